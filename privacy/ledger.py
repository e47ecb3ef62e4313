"""The privacy ledger: one hash-chained JSON line per privacy event, append-only.

Each line carries ``prev_hash`` (the previous line's ``hash``, 64 zeros for the
first) and ``hash``, the sha256 of the line's canonical JSON without ``hash``.
Changing, deleting, inserting or reordering a line breaks the chain at that line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from privacy.atomic import write_text

GENESIS = "0" * 64

# The fields of a privacy event, as DESIGN.md names them; a line holds these plus
# ``prev_hash`` and ``hash`` (and, for a client-level event, ``participants``).
EVENT_FIELDS = (
    "round",
    "client_id",
    "mechanism",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "max_grad_norm",
    "delta",
    "accountant",
    "epsilon",
    "epsilon_budget",
)


def canonical(entry: dict) -> str:
    """The canonical JSON of an entry: sorted keys, no whitespace, no NaN."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False)


def entry_hash(entry: dict) -> str:
    """sha256 of the canonical JSON of ``entry`` without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


class Ledger:
    """An append-only, hash-chained JSONL file, rewritten atomically on each append."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lines: list[str] = []
        self.head = GENESIS
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                self._lines.append(line)
                self.head = json.loads(line)["hash"]

    def append(self, event: dict) -> dict:
        """Chain ``event`` after the current head, write it, and return the full entry."""
        entry = {**event, "prev_hash": self.head}
        entry["hash"] = entry_hash(entry)
        self._lines.append(canonical(entry))
        write_text(self.path, "\n".join(self._lines) + "\n")
        self.head = entry["hash"]
        return entry
