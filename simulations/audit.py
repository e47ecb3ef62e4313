"""``fedsynth audit``: verify the ledger's chain and recompute every epsilon independently.

Training accounted with Opacus (record level) and Flower (owner level); the audit
recomputes from the ledger's events alone with Google's dp-accounting: RDP for
RDP-accounted events, PLD for PRV-accounted ones, and PLD as the tightest figure
for all. It also checks each owner's own ledger against the server's, and the
server's final chain head against the one the report and checkpoints recorded,
which catches a ledger rewritten with fresh hashes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from privacy.ledger import (
    EVENT_FIELDS,
    GENESIS,
    NONPRIVATE,
    Ledger,
    LedgerBroken,
    is_spend,
    read_ledger,
)
from simulations.accounting import recompute_epsilon

MATCH_TOLERANCE = 0.01  # P8: recomputed within 1% of the reported epsilon
BUDGET_TOLERANCE = 1e-3  # numerical slack between two correct accountants
EXIT_OK, EXIT_FINDING, EXIT_BROKEN = 0, 1, 2


@dataclass
class OwnerAudit:
    """One owner's (or the federation's) figures side by side."""

    scope: str
    client_id: int | None
    events: int
    steps: int
    accountant: str
    delta: float
    reported: float
    recomputed: float
    recomputed_method: str
    pld: float
    budget: float | None
    matches: bool
    within_budget: bool
    curve: list[tuple[int, float]] = field(default_factory=list)


def audit_events(entries: list[dict], *, lifetime: bool = False) -> list[OwnerAudit]:
    """Recompute every owner's epsilon (and the owner-level one) from its spends.

    A run's ledger is judged on each event's ``epsilon`` (this run's spend); an
    owner's own ledger, which holds every run it joined, on ``lifetime_epsilon``.
    Either way the owner's lifetime figure must stay within its lifetime budget.
    """
    key = "lifetime_epsilon" if lifetime else "epsilon"
    groups: dict[tuple, list[dict]] = {}
    for e in filter(is_spend, entries):
        scope = "owner" if e["mechanism"] == "dp-sgd" else "federation"
        groups.setdefault((scope, e["client_id"]), []).append(e)
    out = []
    for (scope, cid), events in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        last = events[-1]
        accountants = {e["accountant"] for e in events}
        deltas = {e["delta"] for e in events}
        runs = {e["run_id"] for e in events}
        accountant = last["accountant"] if len(accountants) == 1 else "mixed"
        method = "pld" if last["accountant"] == "prv" else "rdp"
        delta = last["delta"]
        recomputed = recompute_epsilon(events, delta=delta, method=method)
        pld = recomputed if method == "pld" else recompute_epsilon(events, delta=delta,
                                                                    method="pld")
        reported = float(last[key])
        consistent = lifetime or (len(deltas) == 1 and accountant != "mixed" and len(runs) == 1)
        matches = consistent and abs(recomputed - reported) <= MATCH_TOLERANCE * max(reported,
                                                                                     1e-12)
        budget = last.get("epsilon_budget")
        # The claimed figure must be within budget, and so must the tightest valid
        # independent bound: a guarantee holds when any valid accountant certifies it
        # (dp-accounting's RDP can sit ~0.5% above Opacus's where it drops
        # fractional orders it cannot evaluate; its PLD is tighter than both).
        within = budget is None or (
            float(last["lifetime_epsilon"]) <= budget * (1 + 1e-9)
            and min(recomputed, pld) <= budget * (1 + BUDGET_TOLERANCE)
        )
        out.append(OwnerAudit(
            scope=scope, client_id=cid, events=len(events),
            steps=sum(e["steps"] for e in events), accountant=accountant, delta=delta,
            reported=reported, recomputed=recomputed, recomputed_method=method, pld=pld,
            budget=budget, matches=matches, within_budget=within,
            curve=[(e["round"], float(e[key])) for e in events],
        ))
    return out


def compare_owner_ledger(server: list[dict], owner: list[dict], cid: int,
                         run_ids: set) -> list[str]:
    """Differences between the server's spends for owner ``cid`` and the owner's own.

    Only the owner's events of this run (``run_ids``) are compared: its ledger also
    holds every other run it joined.
    """
    mine = {e["round"]: e for e in owner
            if e["mechanism"] == "dp-sgd" and e["run_id"] in run_ids}
    theirs = {e["round"]: e for e in server if is_spend(e) and e["client_id"] == cid}
    problems = []
    for rnd in sorted(set(mine) | set(theirs)):
        a, b = theirs.get(rnd), mine.get(rnd)
        if a is None:
            problems.append(f"owner {cid}: round {rnd} is in the owner's ledger only")
        elif b is None:
            problems.append(f"owner {cid}: round {rnd} is in the server's ledger only")
        else:
            diff = [k for k in EVENT_FIELDS if a.get(k) != b.get(k)]
            if diff:
                problems.append(f"owner {cid}: round {rnd}: {', '.join(diff)} differ "
                                "between the server's and the owner's ledger")
    return problems


@dataclass
class AuditResult:
    """Everything ``audit.json`` holds."""

    ledger: str
    chain_intact: bool
    entries: int
    head: str
    owners: list[OwnerAudit]
    findings: list[str]
    exit_code: int
    events: list[dict] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        """A JSON-ready dict (curves included)."""
        return {
            "ledger": self.ledger,
            "chain_intact": self.chain_intact,
            "entries": self.entries,
            "head": self.head,
            "match_tolerance": MATCH_TOLERANCE,
            "budget_tolerance": BUDGET_TOLERANCE,
            "owners": [asdict(o) for o in self.owners],
            "findings": self.findings,
            "exit_code": self.exit_code,
        }


def _finding_code(owners: list[OwnerAudit], findings: list[str]) -> int:
    for o in owners:
        who = f"owner {o.client_id}" if o.scope == "owner" else "the federation (owner-level)"
        if not o.matches:
            findings.append(f"{who}: reported ε {o.reported:.4f} but {o.recomputed_method} "
                            f"recomputes {o.recomputed:.4f}")
        if not o.within_budget:
            findings.append(f"{who}: ε {max(o.reported, min(o.recomputed, o.pld)):.4f} "
                            f"exceeds the budget {o.budget}")
    return EXIT_FINDING if findings else EXIT_OK


def audit_ledger_file(path: str | Path) -> AuditResult:
    """Audit one ledger alone (an owner's own, with ``--node-ledger``)."""
    entries = Ledger(path, verify=True).entries if Path(path).exists() else read_ledger(path)
    owners = audit_events(entries, lifetime=True)
    findings = [f"owner {e['client_id']}: trained without DP in run {e['run_id']}, round "
                f"{e['round']}: no DP guarantee holds for its data"
                for e in entries if e["mechanism"] == NONPRIVATE]
    code = _finding_code(owners, findings)
    head = entries[-1]["hash"] if entries else GENESIS
    return AuditResult(str(path), True, len(entries), head, owners, findings, code, entries)


def audit_run(run_dir: str | Path, owner_ledgers: str | Path | None = None) -> AuditResult:
    """Audit a run directory: chain, head, owners' ledgers, recomputation, budgets.

    ``owner_ledgers`` is the folder of the owners' own ledgers (``client-N.jsonl``);
    by default the run's ``ledgers/``, where a simulation keeps them.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LedgerBroken(f"{run_dir}: no such run directory")
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    ledger_path = run_dir / "ledger.jsonl"
    no_dp = report is not None and not report["privacy"]["dp"]
    if not ledger_path.exists() and no_dp and report["privacy"].get("client_level") is None:
        return AuditResult(str(ledger_path), True, 0, GENESIS, [],
                           ["no DP: the run trained without differential privacy"], EXIT_OK)
    entries = read_ledger(ledger_path)
    head = entries[-1]["hash"] if entries else GENESIS
    recorded = _recorded_head(run_dir, report)
    if recorded is not None and recorded != head:
        raise LedgerBroken(f"{ledger_path}: line {len(entries)}: the chain ends at {head[:12]}…, "
                           f"but the run recorded {recorded[:12]}… (the ledger was rewritten)")
    owners = audit_events(entries)
    findings: list[str] = []
    run_ids = ({report["run_id"]} if report is not None and "run_id" in report
               else {e["run_id"] for e in entries})
    folder = Path(owner_ledgers) if owner_ledgers is not None else run_dir / "ledgers"
    for own in sorted(folder.glob("client-*.jsonl")):
        cid = int(own.stem.removeprefix("client-"))
        mine = read_ledger(own)
        findings += compare_owner_ledger(entries, mine, cid, run_ids)
        findings += [f"owner {cid}: trained without DP in this run, round {e['round']} (its "
                     "own ledger says so)" for e in mine
                     if e["mechanism"] == NONPRIVATE and e["run_id"] in run_ids]
    if report is not None:
        reported = {c["client_id"]: c["epsilon"] for c in report["privacy"]["per_client"]}
        for o in owners:
            if o.scope == "owner" and reported.get(o.client_id) != o.reported:
                findings.append(f"owner {o.client_id}: report.json says ε "
                                f"{reported.get(o.client_id)}, the ledger {o.reported}")
    code = _finding_code(owners, findings)
    return AuditResult(
        str(ledger_path), True, len(entries), head, owners, findings, code, entries
    )


def _recorded_head(run_dir: Path, report: dict | None) -> str | None:
    """The chain head the run itself recorded: report.json's, else the last checkpoint's."""
    if report is not None and report["privacy"].get("ledger_head"):
        return report["privacy"]["ledger_head"]
    from server.checkpoints import load_latest

    latest = load_latest(run_dir)
    return latest["server"]["ledger_head"] if latest else None
