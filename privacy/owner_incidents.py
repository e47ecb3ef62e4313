"""An owner's local incidents: a failed round that stops it, a P6 breach it noticed.

Both are files beside the owner's ledger that never leave its machine (their contents
can name its record count) and that ``fedsynth audit --node-ledger`` reports.

- ``LEDGER.stopped``: a round failed on the owner (out of memory, a bad record, a bug).
  A failure is answered with a fixed reason and spends nothing, so if the coordinator
  could ask again it would get a fresh draw of the same failure each time, an oracle on
  the records (how often a batch of a chosen size runs out of memory says how many
  there are). The owner stops instead: every later request is refused with one fixed
  reason until its operator has read the log and deleted the file.
- ``LEDGER.p6``: the owner holds more records than 1/max-delta (it declared fewer in
  max-records, which is what P6 was judged on). Its DP guarantee holds as its ledger
  states; P6's margin does not.
"""

from __future__ import annotations

import json
from pathlib import Path

from privacy.atomic import write_text
from privacy.ledger import beside

STOPPED = ("this owner stopped after a failed round; its operator must read its log and "
           "delete its ledger's .stopped file to resume")


def stop_file(ledger_path: str | Path) -> Path:
    """Where an owner notes the failure that stopped it."""
    return beside(ledger_path, ".stopped")


def p6_file(ledger_path: str | Path) -> Path:
    """Where an owner notes that it holds more records than P6 allows at its max-delta."""
    return beside(ledger_path, ".p6")


def stop(ledger_path: str | Path, run_id: int, server_round: int, error: str) -> None:
    """Stop the owner: write the failure beside its ledger (kept until its operator acts)."""
    write_text(stop_file(ledger_path), json.dumps(
        {"run_id": run_id, "round": server_round, "error": error}, sort_keys=True) + "\n")


def note_p6_breach(ledger_path: str | Path, records: int, max_records: int,
                   max_delta: float) -> None:
    """Note beside the ledger that P6 does not hold for the records the owner holds."""
    write_text(p6_file(ledger_path), json.dumps(
        {"records": records, "max_records": max_records, "max_delta": max_delta},
        sort_keys=True) + "\n")


def findings(ledger_path: str | Path) -> list[str]:
    """What the owner's local incident files say, as audit findings."""
    out = []
    stopped, breach = stop_file(ledger_path), p6_file(ledger_path)
    if stopped.exists():
        out.append(f"{stopped}: the owner stopped after a failed round and refuses every "
                   "request until this file is deleted (its log says why)")
    if breach.exists():
        try:
            note = json.loads(breach.read_text("utf-8"))
            detail = (f"it holds {note['records']} records; its max-delta "
                      f"{note['max_delta']:g} is not below 1/{note['records']} (it declared "
                      f"max-records {note['max_records']})")
        except (ValueError, KeyError, TypeError):
            detail = "the note cannot be read"
        out.append(f"{breach}: P6 does not hold for this owner: {detail}; its DP guarantee "
                   "is what its ledger states, but delta is not below 1/records")
    return out
