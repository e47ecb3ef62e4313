"""``fedsynth audit``: a verdict on what the coordinator cannot rewrite.

Training accounted with Opacus; the audit recomputes every epsilon from the
ledger's events alone with Google's dp-accounting: RDP for RDP-accounted events,
PLD for PRV-accounted ones, and PLD as the tightest figure for all. It trusts
nothing the coordinator could have written alone: every owner event must carry
the owner's signature (checked with the keys the owners give the auditor) and
match the owner's own ledger in both directions; budgets are the owners' signed
lifetime budgets and the ε config.toml proposed, never a line's own claim; the
chain must end where report.json and every checkpoint say it did, and a run that
recorded no head at all fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from privacy.experiment import ConfigError, ExperimentConfig, proposal_digest
from privacy.ledger import (
    EXHAUSTED,
    GENESIS,
    NONPRIVATE,
    OWNER_CHAIN_FIELDS,
    Ledger,
    LedgerBroken,
    entry_hash,
    is_spend,
    read_ledger,
)
from privacy.owner_incidents import findings as incident_findings
from privacy.signing import load_owner_keys, verify
from server.release import class_shares, condition_counts
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


MIN_AUDITED_NOISE = 0.05
"""Below this noise multiplier an event certifies no useful ε, and dp-accounting's PLD
can run for minutes: it is reported as unbounded (a finding) rather than computed."""


def audit_events(entries: list[dict], *, lifetime: bool = False,
                 run_budget: float | None = None) -> list[OwnerAudit]:
    """Recompute every owner's epsilon (and the owner-level one) from its spends.

    A run's ledger is judged on each event's ``epsilon`` (this run's spend) against
    ``run_budget`` (the ε config.toml proposed); an owner's own ledger, which holds
    every run it joined, on ``lifetime_epsilon`` against the lifetime budget the owner
    signed. Either way the owner's signed lifetime figure must stay within that budget.
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
        try:
            if min(float(e["noise_multiplier"]) for e in events) < MIN_AUDITED_NOISE:
                raise ValueError("noise too small to account")
            recomputed = recompute_epsilon(events, delta=delta, method=method)
            pld = recomputed if method == "pld" else recompute_epsilon(events, delta=delta,
                                                                        method="pld")
        except (ArithmeticError, ValueError):  # a crafted event: no bound, hence a finding
            recomputed = pld = math.inf
        reported = float(last[key])
        consistent = lifetime or (len(deltas) == 1 and accountant != "mixed" and len(runs) == 1)
        # The claim matches when dp-accounting agrees within 1%, or when it lies between
        # dp-accounting's PLD (the tightest valid bound) and its RDP: at large ε, its RDP
        # drops the fractional orders Opacus's uses and can sit 10% above the claim.
        tol = MATCH_TOLERANCE * max(reported, 1e-12)
        matches = consistent and (abs(recomputed - reported) <= tol or (
            pld - tol <= reported <= max(recomputed, pld) + tol))
        signed_budget = last.get("epsilon_budget")
        budget = signed_budget if lifetime else (run_budget if scope == "owner" else None)
        # The claimed figure must be within budget, and so must the tightest valid
        # independent bound: a guarantee holds when any valid accountant certifies it
        # (dp-accounting's RDP can sit ~0.5% above Opacus's where it drops
        # fractional orders it cannot evaluate; its PLD is tighter than both).
        within = budget is None or (
            reported <= budget * (1 + 1e-9)
            and min(recomputed, pld) <= budget * (1 + BUDGET_TOLERANCE)
        )
        if signed_budget is not None:
            within = within and float(last["lifetime_epsilon"]) <= signed_budget * (1 + 1e-9)
        out.append(OwnerAudit(
            scope="lifetime" if lifetime and scope == "owner" else scope, client_id=cid,
            events=len(events), steps=sum(e["steps"] for e in events), accountant=accountant,
            delta=delta, reported=reported, recomputed=recomputed, recomputed_method=method,
            pld=pld, budget=budget, matches=matches, within_budget=within,
            curve=[(e["round"], float(e[key])) for e in events],
        ))
    return out


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
        who = {"owner": f"owner {o.client_id}",
               "lifetime": f"owner {o.client_id}'s own ledger (every run it joined)",
               "federation": "the federation (owner-level)"}[o.scope]
        if not o.matches:
            findings.append(f"{who}: reported ε {o.reported:.4f} but {o.recomputed_method} "
                            f"recomputes {o.recomputed:.4f}")
        if not o.within_budget:
            findings.append(f"{who}: ε {max(o.reported, min(o.recomputed, o.pld)):.4f} "
                            f"exceeds the budget {o.budget}")
    return EXIT_FINDING if findings else EXIT_OK




def audit_ledger_file(path: str | Path, owner_keys: str | Path | None = None) -> AuditResult:
    """Audit one owner's own ledger alone (``--node-ledger``); signatures when keys are given."""
    entries = Ledger(path, verify=True).entries if Path(path).exists() else read_ledger(path)
    owners = audit_events(entries, lifetime=True)
    findings = [f"owner {e['client_id']}: trained without DP in run {e['run_id']}, round "
                f"{e['round']}: no DP guarantee holds for its data"
                for e in entries if e["mechanism"] == NONPRIVATE]
    findings += incident_findings(path)  # the owner's local notes beside its ledger
    if owner_keys is not None:
        keys = load_owner_keys(owner_keys)
        for n, e in enumerate(entries, start=1):
            findings += _signature_findings(f"{path}: line {n}", e, keys)
    code = _finding_code(owners, findings)
    head = entries[-1]["hash"] if entries else GENESIS
    return AuditResult(str(path), True, len(entries), head, owners, findings, code, entries)


def _signature_findings(where: str, entry: dict, keys: dict) -> list[str]:
    cid = entry.get("client_id")
    key = keys.get(cid)
    if key is None:
        return [f"{where}: no public key of owner {cid} to check its signature (give "
                "--owner-keys DIR holding owner-N.pub)"]
    if entry.get("hash") != entry_hash(entry) or not verify(key, entry):
        return [f"{where}: owner {cid}'s signature does not verify (the event was forged "
                "or altered)"]
    return []


def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LedgerBroken(f"{path}: cannot be read ({err})") from None
    if not isinstance(value, dict):
        raise LedgerBroken(f"{path}: not a JSON object")
    return value


def _anchors(run_dir: Path, report: dict | None) -> list[tuple]:
    """Every place the run recorded the ledger's head: (source, lines, head, run_id, round)."""
    out = []
    if report is not None and isinstance(report.get("privacy"), dict) \
            and report["privacy"].get("ledger_head"):
        p = report["privacy"]
        rounds = report.get("rounds_completed")
        out.append(("report.json", p.get("ledger_lines"), str(p["ledger_head"]),
                    report.get("run_id"), rounds if isinstance(rounds, int) else 0))
    for path in sorted((run_dir / "checkpoints").glob("round-*.pt")):
        try:
            payload = torch.load(path, weights_only=True)
            server = payload["server"]
            out.append((f"checkpoints/{path.name}", server.get("ledger_lines"),
                        str(server["ledger_head"]), server.get("run_id"), int(payload["round"])))
        except Exception as err:  # any unreadable checkpoint is named, not a traceback
            raise LedgerBroken(f"{path}: cannot be read ({type(err).__name__})") from None
    return out


def _anchor_findings(entries: list[dict], anchors) -> list[str]:
    """Each anchor must name a line of the chain: lines cut or rewritten after it show."""
    hashes = [e["hash"] for e in entries]
    findings = []
    for source, lines, head, *_ in anchors:
        if lines is None:
            ok = head in hashes or (head == GENESIS and not entries)
        else:
            ok = lines <= len(entries) and (hashes[lines - 1] if lines else GENESIS) == head
        if not ok:
            findings.append(f"{source} records the ledger's head {head[:12]}… at line "
                            f"{lines}, which the ledger does not hold (it was cut back or "
                            "rewritten)")
    return findings


def _run_line_findings(entries: list[dict], config: ExperimentConfig, keys: dict,
                       digest: str) -> list[str]:
    """Every line against the owners' signatures and the proposal (``digest``) in config.toml."""
    findings, unkeyed = [], set()
    for n, e in enumerate(entries, start=1):
        where, cid, signed = f"ledger.jsonl: line {n}", e.get("client_id"), e.get("owner_entry")
        if e["mechanism"] == "gaussian-aggregate":
            wanted = (config.client_noise, config.fraction, config.client_clip,
                      config.client_delta)
            got = (e["noise_multiplier"], e["sample_rate"], e["max_grad_norm"], e["delta"])
            if config.client_dp == "none" or got != wanted:
                said = wanted if config.client_dp != "none" else "no owner-level DP"
                findings.append(f"{where}: an owner-level release with (noise, fraction, clip, "
                                f"delta) {got}; config.toml says {said}")
            continue
        if signed is None:
            if e["mechanism"] != "none" or e.get("verdict") not in ("rejected", "recorded"):
                findings.append(f"{where}: owner {cid}'s {e['mechanism']} line is not the "
                                "owner's signed event")
            continue
        if cid not in keys:
            unkeyed.add(cid)
        else:
            findings += _signature_findings(where, signed, keys)
        if signed.get("proposal", digest) != digest:
            findings.append(f"{where}: owner {cid} signed another proposal than config.toml "
                            "(config.toml was changed after the run, or the owners were asked "
                            "something else)")
        differ = [k for k, v in signed.items() if k not in OWNER_CHAIN_FIELDS and e.get(k) != v]
        if differ:
            findings.append(f"{where}: {', '.join(differ)} differ from owner {cid}'s signed "
                            "event embedded in the line")
        if e["mechanism"] == NONPRIVATE and config.private:
            findings.append(f"{where}: owner {cid} trained without DP in this private run")
        if e.get("verdict") == "accepted":
            findings += [f"{where}: {why}" for why in _accepted_findings(signed, config)]
    findings += [f"owner {cid}: no public key to check its signatures (give --owner-keys "
                 "DIR holding owner-N.pub)" for cid in sorted(unkeyed, key=str)]
    return findings


def _release_findings(entries: list[dict], config: ExperimentConfig, last_round: int) -> list[str]:
    """Under owner-level DP every proposed round is one release.

    Fewer only when the owners' signed events show every one of them exhausted.
    """
    if config.client_dp == "none":
        return []
    signed = [e["owner_entry"] for e in entries if e.get("owner_entry") is not None]
    owners = {e["client_id"] for e in signed}
    spent = {e["client_id"] for e in signed
             if e.get("exhausted") is True or e.get("reason") == EXHAUSTED}
    stop = last_round if owners and owners <= spent else config.rounds
    rounds = [e["round"] for e in entries if e["mechanism"] == "gaussian-aggregate"]
    missing = [r for r in range(1, max(stop, last_round) + 1) if r not in rounds]
    twice = sorted({r for r in rounds if rounds.count(r) > 1})
    out = []
    if missing:
        out.append(f"owner-level DP: no release is recorded for round(s) "
                   f"{', '.join(map(str, missing))} (config.toml proposes {config.rounds} "
                   "rounds, and the owners' signed events do not show that all of them were "
                   "exhausted before)")
    if twice:
        out.append(f"owner-level DP: round(s) {', '.join(map(str, twice))} have more than "
                   "one release")
    return out


def _secure_sum_findings(entries: list[dict], config: ExperimentConfig) -> list[str]:
    """Distributed noise: every spend follows the public plan, every released sum held enough.

    The plan (survivors, colluders, share, grid, accounted noise) is recomputed from
    config.toml; each round whose spends the coordinator accepted (it applied their sum)
    must show at least the survivors the owners' accounting counted on. Under local
    noise no spend may claim distributed noise.
    """
    spends = [(n, e["owner_entry"]) for n, e in enumerate(entries, start=1)
              if (e.get("owner_entry") or {}).get("mechanism") == "dp-sgd"]
    if not config.distributed:
        return [f"ledger.jsonl: line {n}: owner {e['client_id']} claims distributed noise "
                "under a local-noise proposal" for n, e in spends if "noise" in e]
    from genai_models import resolve
    from privacy.distributed_noise import plan_for

    try:
        plan = plan_for(config, resolve(config.dataset, config.schema_path)[0])
    except ValueError as err:
        return [f"config.toml: no distributed-noise plan fits it ({err})"]
    findings = []
    for n, e in spends:
        bad = plan.mismatches(e)
        if bad:
            findings.append(f"ledger.jsonl: line {n}: owner {e['client_id']}'s {', '.join(bad)} "
                            "differ from the distributed-noise plan of config.toml")
        findings += [f"ledger.jsonl: line {n}: owner {e['client_id']}: {why}"
                     for why in plan.session_findings(e)]
    released: dict[int, int] = {}
    for e in entries:
        if e.get("verdict") == "accepted" and e["mechanism"] == "dp-sgd":
            released[e["round"]] = released.get(e["round"], 0) + 1
    findings += [f"round {r}: a sum of {k} owners was released; the owners counted on at "
                 f"least {plan.survivors}" for r, k in sorted(released.items())
                 if k < plan.survivors]
    return findings


def _accepted_findings(event: dict, config: ExperimentConfig) -> list[str]:
    """An update the coordinator counted must come from a DP-SGD event that fits the proposal."""
    if event["mechanism"] == NONPRIVATE:
        return [] if not config.private else ["accepted an update trained without DP"]
    if event["mechanism"] != "dp-sgd":
        return [f"accepted an update with a {event['mechanism']} event"]
    wanted = {"sample_rate": config.sample_rate, "max_grad_norm": config.max_grad_norm,
              "delta": config.delta, "accountant": config.accountant}
    out = [f"accepted an update whose {k} {event[k]!r} is not config.toml's {v!r}"
           for k, v in wanted.items() if event[k] != v]
    if event["steps"] > config.steps_per_round:
        out.append(f"accepted an update of {event['steps']} steps; config.toml proposes "
                   f"{config.steps_per_round} a round")
    return out


def _read_owner_ledgers(folder: Path) -> dict[int, tuple[Path, list[dict]]]:
    """Every owner's own ledger in ``folder`` (``client-N.jsonl``), verified, by owner id."""
    out = {}
    for path in sorted(folder.glob("client-*.jsonl")) if folder.is_dir() else []:
        suffix = path.stem.removeprefix("client-")
        if suffix.isdigit():
            out[int(suffix)] = (path, read_ledger(path))
    return out


def _owner_ledger_findings(server: list[dict], ledgers: dict, folder: Path, run_ids: set,
                           keys: dict, digest: str) -> list[str]:
    """Each owner's own ledger against the server's, in both directions, by signed line."""
    attested = False
    embedded: dict[int, dict[str, int]] = {}
    for n, e in enumerate(server, start=1):
        if e.get("owner_entry") is not None:
            embedded.setdefault(e["client_id"], {})[e["owner_entry"]["hash"]] = n
    findings = []
    for cid, (path, mine) in ledgers.items():
        for n, e in enumerate(mine, start=1):
            if e["client_id"] != cid:
                findings.append(f"{path}: line {n} names owner {e['client_id']}")
            if cid in keys:
                findings += _signature_findings(f"{path}: line {n}", e, keys)
        this_run = {e["hash"]: (n, e) for n, e in enumerate(mine, start=1)
                    if e["run_id"] in run_ids}
        theirs = embedded.get(cid, {})
        for line_hash, (n, e) in this_run.items():
            if line_hash not in theirs:
                findings.append(f"owner {cid}: its ledger's line {n} (round {e['round']}, "
                                f"{e['mechanism']}) is missing from the server's ledger")
        for line_hash, n in theirs.items():
            if line_hash not in this_run:
                findings.append(f"owner {cid}: the server's ledger line {n} holds a signed "
                                "event that the owner's own ledger lacks")
        findings += [f"owner {cid}: trained without DP in run {e['run_id']}, round "
                     f"{e['round']} (its own ledger says so): no DP guarantee holds for its "
                     "data" for e in mine if e["mechanism"] == NONPRIVATE]
        findings += [f"owner {cid}: its ledger's line {n} was signed for another proposal "
                     "than config.toml" for n, e in this_run.values()
                     if e.get("proposal", digest) != digest]
        attested |= bool(this_run)
    if ledgers and run_ids and not attested:
        findings.append(f"no owner's ledger holds any line of run {', '.join(map(str, run_ids))}: "
                        "the run's id is not attested by its owners (pass the id they know "
                        "with --run-id)")
    missing = sorted(set(embedded) - set(ledgers))
    if missing:
        findings.append(f"owners {', '.join(map(str, missing))}: their own ledgers were not "
                        f"given (--owner-ledgers DIR with client-N.jsonl, looked in {folder}); "
                        "events the coordinator dropped cannot be found without them")
    return findings


def audit_run(run_dir: str | Path, owner_ledgers: str | Path | None = None,
              owner_keys: str | Path | None = None, run_id: int | None = None) -> AuditResult:
    """Audit a run directory against what the coordinator cannot rewrite.

    The owners' signatures (keys from ``owner_keys``, by default the owners' ledger
    folder, where a simulation keeps ``owner-N.pub``), the owners' own ledgers
    (``owner_ledgers``, default ``RUN_DIR/ledgers``), the proposal in config.toml
    (which the owners signed a digest of), and every head the run recorded
    (report.json and each checkpoint); a run that recorded no head at all fails.
    ``run_id`` is the run's id as the owners know it; by default the id the run
    recorded, which the owners' ledgers must then attest.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LedgerBroken(f"{run_dir}: no such run directory")
    if not (run_dir / "config.toml").is_file():
        raise LedgerBroken(f"{run_dir}: no config.toml; not a run directory (or it was "
                           "deleted)")
    try:
        config = ExperimentConfig.parse(ExperimentConfig.read_toml(run_dir / "config.toml"),
                                        f"{run_dir / 'config.toml'}")
    except ConfigError as err:
        raise LedgerBroken(f"{run_dir / 'config.toml'}: {err}") from None
    report = _read_json(run_dir / "report.json")
    ledger_path = run_dir / "ledger.jsonl"
    entries = read_ledger(ledger_path)
    head = entries[-1]["hash"] if entries else GENESIS
    anchors = _anchors(run_dir, report)
    findings = _anchor_findings(entries, anchors)
    if not anchors:
        findings.append("no anchor: neither report.json nor any checkpoint records the "
                        "ledger's head, so a ledger cut back or rewritten cannot be told apart")
    recorded = {a[3] for a in anchors if a[3] is not None} or {e["run_id"] for e in entries}
    if run_id is not None and recorded - {run_id}:
        findings.append(f"the run recorded run id(s) {sorted(recorded, key=str)}, not {run_id}")
    run_ids = {run_id} if run_id is not None else recorded
    if not run_ids:
        findings.append("the run's id is recorded nowhere (report.json, checkpoints, ledger): "
                        "the owners' ledgers cannot be matched to this run")
    folder = Path(owner_ledgers) if owner_ledgers is not None else run_dir / "ledgers"
    keys_dir = Path(owner_keys) if owner_keys is not None else folder
    keys = load_owner_keys(keys_dir) if keys_dir.is_dir() else {}
    digest = proposal_digest(config)
    findings += _run_line_findings(entries, config, keys, digest)
    owners = audit_events(entries, run_budget=config.epsilon if config.private else None)
    ledgers = _read_owner_ledgers(folder)
    findings += _owner_ledger_findings(entries, ledgers, folder, run_ids, keys, digest)
    for _, mine in ledgers.values():
        owners += audit_events(mine, lifetime=True)
    # The last round the run reached, by anything it or its owners recorded.
    last_round = max([0, *(e["round"] for e in entries), *(a[4] for a in anchors),
                      *(e["round"] for _, mine in ledgers.values() for e in mine
                        if e["run_id"] in run_ids)])
    findings += _release_findings(entries, config, last_round)
    findings += _secure_sum_findings(entries, config)
    if report is not None:
        findings += _report_findings(report, entries, owners, config)
    code = _finding_code(owners, findings)
    return AuditResult(str(ledger_path), True, len(entries), head, owners, findings, code,
                       entries)


def _report_findings(report: dict, entries: list[dict], owners: list[OwnerAudit],
                     config: ExperimentConfig) -> list[str]:
    """Every privacy figure report.json states, against the audited ledger and config.toml.

    The report's prose (refusal texts, exhaustion flags) is not audited; its numbers are.
    """
    privacy = report.get("privacy")
    if not isinstance(privacy, dict):
        return ["report.json has no privacy section"]
    per_client = {c.get("client_id"): c for c in privacy.get("per_client", [])
                  if isinstance(c, dict)}
    found = []

    def differs(where: str, stated, true) -> None:
        same = stated == true or (isinstance(stated, int | float) and isinstance(true, float)
                                  and math.isclose(stated, true, rel_tol=1e-9))
        if not same:
            found.append(f"report.json: {where} is {stated!r}; the audited record says {true!r}")

    last: dict[int, dict] = {}
    for e in entries:
        if e["mechanism"] == "dp-sgd" and e.get("owner_entry") is not None:
            last[e["client_id"]] = e
    for o in owners:
        if o.scope != "owner":
            continue
        c, e = per_client.get(o.client_id, {}), last.get(o.client_id, {})
        differs(f"owner {o.client_id}'s epsilon", c.get("epsilon"), o.reported)
        differs(f"owner {o.client_id}'s steps", c.get("steps"), o.steps)
        for key in ("lifetime_epsilon", "epsilon_budget"):
            differs(f"owner {o.client_id}'s {key}", c.get(key), e.get(key))
    spent = [o for o in owners if o.scope == "owner"]
    if config.private:
        differs("privacy.delta", privacy.get("delta"), config.delta)
        differs("privacy.epsilon_proposed", privacy.get("epsilon_proposed"), config.epsilon)
        differs("privacy.max_epsilon", privacy.get("max_epsilon"),
                max((o.reported for o in spent), default=0.0))
        differs("privacy.max_lifetime_epsilon", privacy.get("max_lifetime_epsilon"),
                max((float(e["lifetime_epsilon"]) for e in last.values()), default=0.0))
    else:
        differs("privacy.dp", privacy.get("dp"), False)
    federation = [o for o in owners if o.scope == "federation"]
    client_level = privacy.get("client_level")
    if config.client_dp != "none" or client_level:
        c = client_level if isinstance(client_level, dict) else {}
        differs("client_level.epsilon", c.get("epsilon"),
                federation[0].reported if federation else None)
        for key, true in (("noise_multiplier", config.client_noise), ("clip", config.client_clip),
                          ("fraction", config.fraction), ("delta", config.client_delta)):
            differs(f"client_level.{key}", c.get(key), true)
    # The release's class shares are the sum of the owners' accepted noisy counts.
    stated = privacy.get("class_shares")
    stated = stated if isinstance(stated, dict) else {}
    counted = [e["owner_entry"]["class_counts"] for e in entries
               if e.get("verdict") == "accepted" and "class_counts" in (e.get("owner_entry") or {})]
    true = class_shares(entries, len(counted[0])) if config.releases_counts and counted else None
    differs("privacy.class_shares.shares", stated.get("shares"), true["shares"] if true else None)
    # The GAN's training-by-sampling counts are the owners' accepted category counts.
    stated = privacy.get("condition_counts")
    try:  # the columns come from the run's schema, a file the auditor must be given
        true = condition_counts(entries, config.conditions())
    except (ValueError, OSError) as err:
        found.append(f"report.json: privacy.condition_counts cannot be recomputed: the run's "
                     f"schema cannot be read ({str(err)[:200]})")
        return found
    differs("privacy.condition_counts.counts",
            stated.get("counts") if isinstance(stated, dict) else None,
            true["counts"] if true else None)
    return found
