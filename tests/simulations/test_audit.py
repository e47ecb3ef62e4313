"""`fedsynth audit`: tampering of each kind is caught; honest ledgers pass."""

import json
import shutil

import pytest
import tomli_w

from privacy.accountant import epsilon_of
from privacy.experiment import ExperimentConfig
from privacy.ledger import OWNER_CHAIN_FIELDS, Ledger, entry_hash
from privacy.signing import Signer
from simulations.audit import EXIT_BROKEN, EXIT_FINDING, EXIT_OK, audit_run
from simulations.cli import main

SIGMA, RATE, STEPS, DELTA, RUN_ID = 1.3, 0.25, 8, 1e-5, 77


def _event(rnd, cid, accountant="rdp", budget=8.0, steps=STEPS, sigma=SIGMA):
    history = [(sigma, RATE, steps * rnd)]
    eps = epsilon_of(history, accountant=accountant, delta=DELTA)
    return {
        "round": rnd, "client_id": cid, "run_id": RUN_ID, "mechanism": "dp-sgd",
        "noise_multiplier": sigma, "sample_rate": RATE, "steps": steps, "max_grad_norm": 1.0,
        "delta": DELTA, "accountant": accountant, "epsilon": eps, "lifetime_epsilon": eps,
        "epsilon_budget": budget,
    }


def build_run(run, accountant="rdp", budget=8.0, rounds=3):
    """A run directory as a run writes it: config, signed owner ledgers embedded, report."""
    config = ExperimentConfig(num_clients=2, rounds=rounds, local_epochs=2, sample_rate=RATE,
                              delta=DELTA, accountant=accountant)
    (run / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (run / "config.toml").write_text(tomli_w.dumps(config.to_run_config()))
    ledger = Ledger(run / "ledger.jsonl")
    owners = {cid: Ledger(run / "ledgers" / f"client-{cid}.jsonl", verify=True,
                          signer=Signer.load_or_create(run / "ledgers" / f"owner-{cid}.key"))
              for cid in (0, 1)}
    for rnd in range(1, rounds + 1):
        for cid in (0, 1):
            entry = owners[cid].append(_event(rnd, cid, accountant, budget))
            copy = {k: v for k, v in entry.items() if k not in OWNER_CHAIN_FIELDS}
            ledger.append({**copy, "node_id": 10 + cid, "owner_entry": entry,
                           "verdict": "accepted"})
    last = _event(rounds, 0, accountant, budget)
    report = {"run_id": RUN_ID, "privacy": {
        "dp": True, "ledger_head": ledger.head, "ledger_lines": len(ledger.entries),
        "delta": DELTA, "epsilon_proposed": 8.0, "max_epsilon": last["epsilon"],
        "max_lifetime_epsilon": last["lifetime_epsilon"], "client_level": None,
        "per_client": [{"client_id": cid, "epsilon": last["epsilon"], "steps": STEPS * rounds,
                        "lifetime_epsilon": last["lifetime_epsilon"], "epsilon_budget": budget}
                       for cid in (0, 1)]}}
    (run / "report.json").write_text(json.dumps(report))
    return run


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("honest"))


@pytest.fixture
def run(honest, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(honest, copy)
    return copy


def _lines(run):
    return (run / "ledger.jsonl").read_text().splitlines()


def _write(run, lines):
    (run / "ledger.jsonl").write_text("\n".join(lines) + "\n")


def _rehash(lines):
    """What a careful forger does: recompute every hash after an edit."""
    prev, out = "0" * 64, []
    for raw in lines:
        e = json.loads(raw)
        e["prev_hash"] = prev
        e["hash"] = entry_hash(e)
        prev = e["hash"]
        out.append(json.dumps(e))
    return out, prev


def _audit(run, capsys):
    code = main(["audit", str(run)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_honest_run_passes_and_writes_audit_json_and_plot(run, capsys):
    code, out = _audit(run, capsys)
    assert code == EXIT_OK, out
    audit = json.loads((run / "audit.json").read_text())
    assert audit["chain_intact"] and audit["entries"] == 6
    for owner in audit["owners"]:
        assert owner["recomputed"] == pytest.approx(owner["reported"], rel=0.01)
        assert owner["pld"] < owner["recomputed"]
    assert (run / "privacy_budget.png").stat().st_size > 1000


def test_changed_number_is_caught_by_line(run, capsys):
    lines = _lines(run)
    lines[3] = lines[3].replace('"noise_multiplier":1.3', '"noise_multiplier":13.0')
    _write(run, lines)
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 4: hash does not match" in out


def test_deleted_line_is_caught_by_line(run, capsys):
    lines = _lines(run)
    del lines[2]
    _write(run, lines)
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 3: prev_hash does not match line 2" in out


def test_reordered_lines_are_caught(run, capsys):
    lines = _lines(run)
    lines[1], lines[2] = lines[2], lines[1]
    _write(run, lines)
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 2: prev_hash" in out


def test_inserted_line_is_caught(run, capsys):
    lines = _lines(run)
    lines.insert(1, lines[0])
    _write(run, lines)
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 2:" in out


def test_truncated_and_garbled_lines_are_caught(run, capsys):
    text = (run / "ledger.jsonl").read_text()
    (run / "ledger.jsonl").write_text(text[:-40])
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 6: truncated" in out
    (run / "ledger.jsonl").write_text(text.replace("}\n", "}\n{oops\n", 1))
    code, out = _audit(run, capsys)
    assert code == EXIT_BROKEN and "line 2: not a JSON object" in out


def test_rehashed_forgery_is_caught_by_the_recorded_head(run, capsys):
    lines = _lines(run)
    lines[5] = lines[5].replace('"noise_multiplier":1.3', '"noise_multiplier":2.6')
    forged, _ = _rehash(lines)
    _write(run, forged)
    code, out = _audit(run, capsys)
    assert code == EXIT_FINDING and "report.json records the ledger's head" in out


def test_forgery_with_a_forged_head_is_caught_by_signatures_and_owner_ledgers(run, capsys):
    lines = _lines(run)
    lines[5] = lines[5].replace('"noise_multiplier":1.3', '"noise_multiplier":2.6', 1)
    forged, head = _rehash(lines)
    _write(run, forged)
    report = json.loads((run / "report.json").read_text())
    report["privacy"]["ledger_head"] = head
    (run / "report.json").write_text(json.dumps(report))
    code, out = _audit(run, capsys)
    assert code == EXIT_FINDING
    assert "ledger.jsonl: line 6: noise_multiplier differ from owner 1's signed event" in out


def test_exceeded_budget_exits_1(tmp_path, capsys):
    ledger = Ledger(tmp_path / "own.jsonl", signer=Signer.load_or_create(tmp_path / "k.key"))
    for rnd in (1, 2, 3):
        ledger.append(_event(rnd, 0, budget=2.0))
    code = main(["audit", "--node-ledger", str(tmp_path / "own.jsonl")])
    out = capsys.readouterr().out
    assert code == EXIT_FINDING and "exceeds the budget 2.0" in out


def test_node_ledger_alone_passes_and_missing_one_is_exit_2(run, capsys):
    assert main(["audit", "--node-ledger", str(run / "ledgers" / "client-1.jsonl")]) == EXIT_OK
    assert main(["audit", "--node-ledger", str(run / "nope.jsonl")]) == EXIT_BROKEN
    assert "no such ledger" in capsys.readouterr().err


def test_prv_events_are_recomputed_with_pld(tmp_path):
    result = audit_run(build_run(tmp_path / "run", accountant="prv", rounds=2))
    owner = result.owners[0]
    assert owner.scope == "owner" and owner.recomputed_method == "pld"
    assert owner.recomputed == pytest.approx(owner.reported, rel=0.01)
    assert result.exit_code == EXIT_OK, result.findings


def test_a_large_epsilon_between_dp_accountings_pld_and_rdp_matches():
    """At ε ≈ 50 dp-accounting's RDP (no fractional orders) sits 10% above Opacus's."""
    from simulations.audit import audit_events

    sigma, steps = 0.70947265625, 160
    eps = epsilon_of([(sigma, 0.25, steps)], accountant="rdp", delta=1e-5)
    event = {"round": 1, "client_id": 0, "run_id": 1, "mechanism": "dp-sgd",
             "noise_multiplier": sigma, "sample_rate": 0.25, "steps": steps,
             "max_grad_norm": 1.0, "delta": 1e-5, "accountant": "rdp", "epsilon": eps,
             "lifetime_epsilon": eps, "epsilon_budget": 50.0}
    [owner] = audit_events([event], run_budget=50.0)
    assert owner.pld < eps < owner.recomputed and owner.recomputed > eps * 1.05
    assert owner.matches and owner.within_budget
    [understated] = audit_events([{**event, "epsilon": owner.pld * 0.9}], run_budget=50.0)
    assert not understated.matches


@pytest.mark.parametrize("sigma", [1e-300, 0.01])
def test_an_event_with_absurdly_small_noise_is_an_unbounded_finding_not_a_crash(sigma):
    from simulations.audit import audit_events

    event = {"round": 1, "client_id": 0, "run_id": 1, "mechanism": "dp-sgd",
             "noise_multiplier": sigma, "sample_rate": 0.25, "steps": 10**9,
             "max_grad_norm": 1.0, "delta": 1e-5, "accountant": "rdp", "epsilon": 1.0,
             "lifetime_epsilon": 1.0, "epsilon_budget": 8.0}
    [owner] = audit_events([event], run_budget=8.0)
    assert owner.recomputed == float("inf") and not owner.matches and not owner.within_budget
