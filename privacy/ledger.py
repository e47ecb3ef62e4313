"""The privacy ledger: one hash-chained JSON line per privacy event, append-only.

Each line carries ``prev_hash`` (the previous line's ``hash``, 64 zeros for the
first) and ``hash``, the sha256 of the line's canonical JSON without ``hash``.
Changing, deleting, inserting or reordering a line breaks the chain at that line.

Three kinds of line: a *spend* (``mechanism`` ``dp-sgd`` or ``gaussian-aggregate``,
with the parameters any accountant needs), a *refusal* (``mechanism`` ``none``, with
the ``reason`` an owner declined or failed a request), and a *non-private release*
(``mechanism`` ``nonprivate``: the owner trained without DP, so no DP guarantee holds
for its data any more). An owner's ledger is its truth: :func:`read_ledger` verifies
every line, :func:`locked` serialises the read-train-append of one owner so two
messages can never both spend, and a pinned head beside the file (``PATH.head``)
catches a ledger that was cut back, replaced or deleted.

An owner signs every line it appends (:mod:`privacy.signing`: ``key_id`` inside the
hashed body, ``signature`` of the ``hash`` beside it). The coordinator's ledger
embeds each signed line it received verbatim (``owner_entry``), next to its
``verdict`` on the reply (``accepted``, ``recorded`` for a refusal or failure,
``rejected`` with a ``rejection``), so neither side can drop or alter the other's
record without the audit noticing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from privacy.atomic import write_text
from privacy.signing import Signer

GENESIS = "0" * 64
SPEND_MECHANISMS = ("dp-sgd", "gaussian-aggregate")
REFUSAL = "none"
NONPRIVATE = "nonprivate"
EXHAUSTED = "the privacy budget is spent"
"""An owner's refusal when not one more step fits its budgets (a spend says ``exhausted``)."""

# The fields of a spend, as DESIGN.md names them plus the run it belongs to and the
# owner's lifetime epsilon; a line holds these plus ``prev_hash`` and ``hash`` (and,
# for a client-level event, ``participants``).
EVENT_FIELDS = (
    "round",
    "client_id",
    "run_id",
    "mechanism",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "max_grad_norm",
    "delta",
    "accountant",
    "epsilon",
    "lifetime_epsilon",
    "epsilon_budget",
)
REFUSAL_FIELDS = ("round", "client_id", "run_id", "mechanism", "reason")
VERDICTS = ("accepted", "recorded", "rejected")
UNHASHED = ("hash", "signature")
# The fields of an owner's line that belong to its own chain and signature: the
# coordinator's line copies every other field of an embedded owner event.
OWNER_CHAIN_FIELDS = ("prev_hash", "hash", "key_id", "signature")
# Every field an owner's event may hold; anything else in a reply's event is refused
# (the coordinator's own fields, verdict or clipping, are never the owner's to set).
# A distributed-noise spend says so, with its trust assumption and share
# (privacy.distributed_noise); its noise_multiplier is what the whole sum carries.
DISTRIBUTED_FIELDS = ("noise", "survivors", "colluders", "noise_share", "grid")
SESSION_FIELDS = ("secagg_participants", "secagg_threshold", "secagg_session")
"""What a distributed-noise owner saw at SecAgg+'s setup, signed into its spend."""
OWNER_FIELDS = frozenset((*EVENT_FIELDS, *REFUSAL_FIELDS, *OWNER_CHAIN_FIELDS, "proposal",
                          "exhausted", "class_noise", "class_counts", "category_counts",
                          *DISTRIBUTED_FIELDS,
                          *SESSION_FIELDS))


MAX_CLASSES = 10_000


def history_of(entry: dict) -> list[tuple[float, float, int]]:
    """The accountant history one spend adds: its class counts (if any), then its steps.

    Noisy class counts are a Gaussian mechanism of L2 sensitivity 1, which is one
    step at sample rate 1 with noise multiplier ``class_noise``: it composes with the
    DP-SGD steps in every accountant, the owner's, the audit's and dp-accounting's.
    With the category counts of k conditioned columns beside them (the GAN's
    training-by-sampling) the sensitivity is √(1+k) and the noise's std is
    ``class_noise``·√(1+k) (genai_models.training_by_sampling.counts_std): the same step.
    """
    counts = [(float(entry["class_noise"]), 1.0, 1)] if "class_noise" in entry else []
    return [*counts, (entry["noise_multiplier"], entry["sample_rate"], entry["steps"])]


class LedgerBroken(Exception):
    """A ledger that cannot be read or whose chain is broken; the message names the line."""


def canonical(entry: dict) -> str:
    """The canonical JSON of an entry: sorted keys, no whitespace, no NaN."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False)


def entry_hash(entry: dict) -> str:
    """sha256 of the canonical JSON of ``entry`` without its ``hash`` and ``signature``."""
    body = {k: v for k, v in entry.items() if k not in UNHASHED}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def beside(ledger_path: str | Path, suffix: str) -> Path:
    """A file that belongs to a ledger and lives next to it: ``LEDGER<suffix>``."""
    path = Path(ledger_path)
    return path.with_name(path.name + suffix)


def is_spend(entry: dict) -> bool:
    """Whether a line spends privacy (as opposed to recording a refusal)."""
    return entry.get("mechanism") in SPEND_MECHANISMS


def check_entry(path: Path | str, n: int, e: dict) -> None:
    """Field types and ranges of one line (``n`` is 1-based); LedgerBroken names the bad one."""

    def bad(why: str):
        raise LedgerBroken(f"{path}: line {n}: {why}")

    for key, kind in (("verdict", str), ("rejection", str), ("owner_entry", dict),
                      ("key_id", str), ("signature", str), ("node_id", int),
                      ("proposal", str), ("exhausted", bool), ("update_norm", float),
                      ("update_bound", float), ("clipped", bool), ("discarded", str)):
        if key in e and not isinstance(e[key], kind):
            bad(f"{key}={e[key]!r} has the wrong type")
    if "verdict" in e and e["verdict"] not in VERDICTS:
        bad(f"verdict={e['verdict']!r}; expected one of {', '.join(VERDICTS)}")

    mechanism = e.get("mechanism")
    if mechanism not in (*SPEND_MECHANISMS, REFUSAL, NONPRIVATE):
        bad(f"mechanism={mechanism!r}; expected dp-sgd, gaussian-aggregate, none or nonprivate")
    required = EVENT_FIELDS if mechanism in SPEND_MECHANISMS else REFUSAL_FIELDS
    missing = [k for k in (*required, "prev_hash", "hash") if k not in e]
    if missing:
        bad(f"missing {', '.join(missing)}")

    def number(key, low=-math.inf, high=math.inf, integer=False, low_open=False):
        v = e[key]
        ok = isinstance(v, int if integer else (int, float)) and not isinstance(v, bool)
        if ok and isinstance(v, int) and abs(v) > 2**63:  # beyond any real count; no overflow
            ok = False
        if not ok or not math.isfinite(v) or v < low or v > high or (low_open and v == low):
            bad(f"{key}={v!r} is not a valid value")

    number("round", 1, integer=True)
    if "category_counts" in e and "class_counts" not in e:
        bad("category_counts come only with class_counts")
    if mechanism == NONPRIVATE and "class_counts" in e:
        _counts(bad, e["class_counts"])
        if "category_counts" in e:
            _counts(bad, e["category_counts"], "category_counts")
    if mechanism in (REFUSAL, NONPRIVATE):
        if not (mechanism == REFUSAL and e["client_id"] is None and "verdict" in e):
            number("client_id", 0, integer=True)  # the coordinator may not know who sent it
        if not isinstance(e["reason"], str) or not e["reason"]:
            bad("a refusal needs a reason")
        return
    if e["accountant"] not in ("rdp", "prv"):
        bad(f"accountant={e['accountant']!r}; expected rdp or prv")
    number("steps", 1, 10**9, integer=True)
    number("noise_multiplier", 0, low_open=True)
    number("sample_rate", 0, 1, low_open=True)
    number("delta", 0, 1, low_open=True)
    number("epsilon", 0)
    number("max_grad_norm", 0, low_open=True)
    if mechanism == "dp-sgd":
        number("client_id", 0, integer=True)
        number("lifetime_epsilon", 0)
        number("epsilon_budget", 0, low_open=True)
        if ("class_noise" in e) != ("class_counts" in e):
            bad("class_counts and class_noise come together")
        if "class_noise" in e:
            number("class_noise", 0, low_open=True)
            _counts(bad, e["class_counts"])
            if "category_counts" in e:
                _counts(bad, e["category_counts"], "category_counts")
        if any(k in e for k in DISTRIBUTED_FIELDS):
            missing = [k for k in DISTRIBUTED_FIELDS if k not in e]
            if missing or e["noise"] != "distributed":
                bad(f"a distributed-noise spend needs noise='distributed' and "
                    f"{', '.join(DISTRIBUTED_FIELDS[1:])}")
            number("survivors", 2, 10**6, integer=True)
            number("colluders", 0, e["survivors"] - 1, integer=True)
            number("noise_share", 0, low_open=True)
            number("grid", 0, low_open=True)
            if e["steps"] != 1:
                bad("a distributed-noise spend is one step")
            for key in SESSION_FIELDS:
                if key not in e:
                    bad(f"a distributed-noise spend needs {key}")
            number("secagg_participants", 0, 10**6, integer=True)
            number("secagg_threshold", 0, 10**6, integer=True)
            if not isinstance(e["secagg_session"], str) or len(e["secagg_session"]) != 64:
                bad("secagg_session is not a session digest")
    elif e["client_id"] is not None:
        bad("a gaussian-aggregate event has client_id null")


def _counts(bad, counts, key: str = "class_counts") -> None:
    """Counts: a list of at most MAX_CLASSES finite numbers of sane size."""
    if not isinstance(counts, list) or not 1 <= len(counts) <= MAX_CLASSES or not all(
            isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
            and abs(c) <= 1e12 for c in counts):
        bad(f"{key} is not a list of at most {MAX_CLASSES} finite numbers")


def read_ledger(path: str | Path) -> list[dict]:
    """Parse and verify a hash-chained ledger; raise LedgerBroken naming the first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LedgerBroken(f"{path}: no such ledger") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LedgerBroken(f"{path}: cannot be read ({err})") from None
    if text and not text.endswith("\n"):
        raise LedgerBroken(f"{path}: line {text.count(chr(10)) + 1}: truncated (no newline)")
    entries, prev = [], GENESIS
    seen: set[tuple] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        try:
            e = json.loads(raw)
        except json.JSONDecodeError:
            raise LedgerBroken(f"{path}: line {n}: not a JSON object") from None
        if not isinstance(e, dict):
            raise LedgerBroken(f"{path}: line {n}: not a JSON object")
        check_entry(path, n, e)
        if e["hash"] != entry_hash(e):
            raise LedgerBroken(f"{path}: line {n}: hash does not match the line's content "
                               "(the line was altered)")
        if e["prev_hash"] != prev:
            where = "the start of the ledger" if n == 1 else f"line {n - 1}"
            raise LedgerBroken(f"{path}: line {n}: prev_hash does not match {where} (a line "
                               "was deleted, inserted or reordered)")
        if is_spend(e):
            key = (e["run_id"], e["round"], e["client_id"], e["mechanism"])
            if key in seen:
                raise LedgerBroken(f"{path}: line {n}: a second event for run {e['run_id']}, "
                                   f"round {e['round']}, owner {e['client_id']}")
            seen.add(key)
        entries.append(e)
        prev = e["hash"]
    return entries


def _cut_unfinished_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline (it was never completed)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "r+b") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        text = handle.read()
        handle.truncate(text.rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())


class Ledger:
    """An append-only, hash-chained JSONL file: each line is appended and fsynced.

    A crash while a line is written leaves a last line without its newline: that
    line never completed (nothing it records was sent), so opening the ledger cuts
    it off before anything is read.

    With ``verify`` (an owner's own ledger) the existing lines are checked first, and
    the file is held to its pinned head (``PATH.head``: line count and last hash,
    rewritten after every append): a broken, unreadable, cut-back or missing ledger
    raises :class:`LedgerBroken`, and the caller fails closed.
    """

    def __init__(self, path: str | Path, *, verify: bool = False, signer: Signer | None = None):
        self.path = Path(path)
        self.signer = signer
        self.pin = beside(self.path, ".head") if verify else None
        self.entries: list[dict] = []
        self.head = GENESIS
        _cut_unfinished_line(self.path)
        if verify:
            if self.path.exists():
                self.entries = read_ledger(self.path)
            self._check_pin()
        elif self.path.exists():
            self.entries = [json.loads(x) for x in self.path.read_text("utf-8").splitlines()]
        if self.entries:
            self.head = self.entries[-1]["hash"]
        if signer is not None:
            for n, e in enumerate(self.entries, start=1):
                if e.get("key_id") != signer.key_id:
                    raise LedgerBroken(f"{self.path}: line {n} is signed by key "
                                       f"{e.get('key_id')}, not this owner's key "
                                       f"{signer.key_id} (the signing key was replaced)")

    def _check_pin(self) -> None:
        if not self.pin.exists():
            return
        try:
            pinned = json.loads(self.pin.read_text("utf-8"))
            lines, head = int(pinned["lines"]), str(pinned["head"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LedgerBroken(f"{self.pin}: the pinned head cannot be read ({err})") from None
        if not self.path.exists() and lines:
            raise LedgerBroken(f"{self.path}: missing, but its pinned head says {lines} lines")
        if len(self.entries) < lines or (lines and self.entries[lines - 1]["hash"] != head):
            raise LedgerBroken(f"{self.path}: holds {len(self.entries)} lines that do not "
                               f"end in the pinned head of line {lines} (the ledger was cut "
                               "back or replaced)")

    def append(self, event: dict) -> dict:
        """Chain ``event`` after the current head (signed, with a signer), write it, return it."""
        entry = {**event, "prev_hash": self.head}
        if self.signer is not None:
            entry["key_id"] = self.signer.key_id
        entry["hash"] = entry_hash(entry)
        if self.signer is not None:
            entry["signature"] = self.signer.sign(entry["hash"])
        if self.pin is not None:  # an owner's ledger: a line its own reader would refuse
            # is never written (it would stop the owner for good at the next open)
            check_entry(self.path, len(self.entries) + 1, entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (canonical(entry) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries.append(entry)
        self.head = entry["hash"]
        if self.pin is not None:
            write_text(self.pin, canonical({"lines": len(self.entries), "head": self.head}))
        return entry


@contextlib.contextmanager
def locked(path: str | Path, signing_key: str | Path | None = None) -> Iterator[Ledger]:
    """Hold an exclusive lock on ``path`` (through ``PATH.lock``) and yield the verified ledger.

    Everything that reads the history and appends a spend happens inside one lock, so
    concurrent messages to one owner (or two processes sharing its ledger) are serialised;
    the owner's signing key is read (or made, on first use) inside it too, so two first
    messages cannot make two keys. A bad key raises SigningKeyError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(beside(path, ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            signer = Signer.load_or_create(signing_key) if signing_key else None
            yield Ledger(path, verify=True, signer=signer)
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
