"""The tamper suite: a coordinator that rewrites what it holds does not pass the audit.

One real simulated run (2 owners, 2 rounds, real Flower and Opacus, record-level DP
at each owner and owner-level DP at the coordinator), the owners' ledgers and keys
kept apart from the run directory as in a deployment. Each case
copies it, tampers as a careful forger would (every hash recomputed, every head in
report.json and the checkpoints moved to match), and the audit must fail naming
what is wrong. The honest run passes.
"""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from privacy.accountant import epsilon_of
from privacy.ledger import GENESIS, OWNER_CHAIN_FIELDS, canonical, entry_hash
from privacy.signing import Signer
from simulations.audit import EXIT_BROKEN, EXIT_FINDING, EXIT_OK
from simulations.cli import main


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    base = tmp_path_factory.mktemp("tamper")
    cfg = base / "tiny.toml"
    cfg.write_text("hidden-dim = 16\nlatent-dim = 2\nsynthetic-samples = 100\n")
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "simulate", "--config", str(cfg),
         "--num-clients", "2", "--rounds", "2", "--out", str(base / "run"),
         "--client-dp", "fixed", "--server-momentum", "0", "--client-noise", "1.0",
         "--owner-ledgers", str(base / "owners")],
        capture_output=True, text=True, timeout=600, cwd=base,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base


@pytest.fixture
def fed(honest, tmp_path):
    shutil.copytree(honest / "run", tmp_path / "run")
    shutil.copytree(honest / "owners", tmp_path / "owners")
    return tmp_path


def _audit(fed, capsys, *extra):
    code = main(["audit", str(fed / "run"), "--owner-ledgers", str(fed / "owners"),
                 "--owner-keys", str(fed / "owners"), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def _lines(fed):
    return [json.loads(x) for x in (fed / "run" / "ledger.jsonl").read_text().splitlines()]


def _forge(fed, lines, anchors=True):
    """Write ``lines`` as a chain with fresh hashes and (by default) move every head to it."""
    prev = GENESIS
    for e in lines:
        e["prev_hash"] = prev
        e["hash"] = entry_hash(e)
        prev = e["hash"]
    (fed / "run" / "ledger.jsonl").write_text("".join(canonical(e) + "\n" for e in lines))
    if not anchors:
        return
    report_path = fed / "run" / "report.json"
    report = json.loads(report_path.read_text())
    report["privacy"]["ledger_head"], report["privacy"]["ledger_lines"] = prev, len(lines)
    report_path.write_text(json.dumps(report))
    for path in (fed / "run" / "checkpoints").glob("round-*.pt"):
        payload = torch.load(path, weights_only=True)
        payload["server"]["ledger_head"], payload["server"]["ledger_lines"] = prev, len(lines)
        torch.save(payload, path)


def _owner_lines(lines):
    return [e for e in lines if e["mechanism"] != "gaussian-aggregate"]


def test_the_honest_run_passes_with_ledgers_and_keys_kept_apart(fed, capsys):
    assert not (fed / "run" / "ledgers").exists()
    code, out = _audit(fed, capsys)
    assert code == EXIT_OK, out
    assert all("signature" in e["owner_entry"] for e in _owner_lines(_lines(fed)))


def test_dropping_the_last_round_and_moving_every_head_is_caught(fed, capsys):
    _forge(fed, [e for e in _lines(fed) if e["round"] < 2])
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING
    assert "(round 2, dp-sgd) is missing from the server's ledger" in out


def test_dropping_the_last_round_with_only_the_report_patched_is_caught(fed, capsys):
    lines = [e for e in _lines(fed) if e["round"] < 2]
    _forge(fed, lines, anchors=False)
    report_path = fed / "run" / "report.json"
    report = json.loads(report_path.read_text())
    report["privacy"]["ledger_head"], report["privacy"]["ledger_lines"] = lines[-1]["hash"], 2
    report_path.write_text(json.dumps(report))
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "checkpoints/round-002.pt records the ledger's head" in out


def _halved(e, budget=40.0):
    sigma = e["noise_multiplier"] / 2
    eps = epsilon_of([(sigma, e["sample_rate"], e["steps"] * e["round"])],
                     accountant=e["accountant"], delta=e["delta"])
    return {**e, "noise_multiplier": sigma, "epsilon": eps, "lifetime_epsilon": eps,
            "epsilon_budget": budget}


def test_halved_noise_and_a_raised_budget_are_caught(fed, capsys):
    lines = [_halved(e) if "owner_entry" in e else e for e in _lines(fed)]
    _forge(fed, lines)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING
    assert "noise_multiplier, epsilon, lifetime_epsilon, epsilon_budget differ" in out \
        or "differ from owner" in out, out


def test_halved_noise_inside_the_embedded_owner_event_breaks_its_signature(fed, capsys):
    lines = []
    for e in _owner_lines(_lines(fed)):
        inner = _halved(e["owner_entry"])
        inner["hash"] = entry_hash(inner)
        lines.append({**_halved(e), "owner_entry": inner})
    _forge(fed, lines)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "signature does not verify" in out


def test_an_event_re_signed_with_the_coordinators_own_key_is_caught(fed, capsys):
    mallory = Signer.load_or_create(fed / "mallory.key")
    lines = _lines(fed)
    inner = {**_halved(lines[0]["owner_entry"], budget=8.0), "key_id": mallory.key_id}
    inner["hash"] = entry_hash(inner)
    inner["signature"] = mallory.sign(inner["hash"])
    copy = {k: v for k, v in inner.items() if k not in OWNER_CHAIN_FIELDS}
    lines[0] = {**lines[0], **copy, "owner_entry": inner}
    _forge(fed, lines)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "line 1: owner" in out and "signature does not verify" in out


def test_a_truncated_ledger_without_report_or_checkpoints_fails(fed, capsys):
    (fed / "run" / "ledger.jsonl").write_text("")
    (fed / "run" / "report.json").unlink()
    shutil.rmtree(fed / "run" / "checkpoints")
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "no anchor" in out
    assert "the run's id is recorded nowhere" in out


def test_an_unsigned_spend_the_coordinator_made_up_is_caught(fed, capsys):
    lines = _lines(fed)
    fake = {k: v for k, v in lines[0].items() if k != "owner_entry"} | {"round": 3}
    _forge(fed, [*lines, fake])
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "line 7: owner" in out
    assert "is not the owner's signed event" in out


def test_an_accepted_reply_with_mechanism_none_is_caught(fed, capsys):
    """A malicious owner signs a refusal but sends weights; a coordinator that counts it fails."""
    owner = Signer.load_or_create(fed / "owners" / "owner-0.key")
    lines = _lines(fed)
    inner = {"round": 2, "client_id": 0, "run_id": lines[0]["run_id"], "mechanism": "none",
             "reason": "x", "prev_hash": lines[0]["owner_entry"]["hash"],
             "key_id": owner.key_id}
    inner["hash"] = entry_hash(inner)
    inner["signature"] = owner.sign(inner["hash"])
    copy = {k: v for k, v in inner.items() if k not in OWNER_CHAIN_FIELDS}
    _forge(fed, [*lines, {**copy, "node_id": 1, "owner_entry": inner, "verdict": "accepted"}])
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "accepted an update with a none event" in out


def test_an_owner_level_release_with_other_noise_is_caught(fed, capsys):
    lines = _lines(fed)
    release = next(e for e in lines if e["mechanism"] == "gaussian-aggregate")
    release.update(noise_multiplier=50.0, epsilon=0.01, lifetime_epsilon=0.01)
    _forge(fed, lines)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "an owner-level release with (noise" in out


def test_a_dropped_owner_level_release_is_caught(fed, capsys):
    lines = _lines(fed)
    last = max(i for i, e in enumerate(lines) if e["mechanism"] == "gaussian-aggregate")
    _forge(fed, lines[:last] + lines[last + 1:])
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "no release is recorded for round(s) 2" in out


def test_trailing_releases_dropped_with_their_checkpoints_are_caught(fed, capsys):
    lines = [e for e in _lines(fed) if e["round"] < 2]
    (fed / "run" / "checkpoints" / "round-002.pt").unlink()
    _forge(fed, lines)
    report_path = fed / "run" / "report.json"
    report = json.loads(report_path.read_text())
    report["rounds_completed"] = 1
    report_path.write_text(json.dumps(report))
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "no release is recorded for round(s) 2" in out


def test_privacy_figures_rewritten_in_the_report_are_caught(fed, capsys):
    report_path = fed / "run" / "report.json"
    report = json.loads(report_path.read_text())
    p = report["privacy"]
    for c in p["per_client"]:
        c.update(lifetime_epsilon=0.01, epsilon_budget=1.0, steps=1)
    p.update(max_lifetime_epsilon=0.01, delta=1e-9)
    p["client_level"]["epsilon"] = 0.01
    # Owner-level DP: no counts were released, the classes were balanced; the report
    # claims shares anyway ("the data was all zeros and ones").
    assert p["class_shares"]["mode"] == "balanced"
    p["class_shares"]["shares"] = [0.5, 0.5] + [0.0] * 8
    report_path.write_text(json.dumps(report))
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING
    for what in ("owner 0's lifetime_epsilon", "owner 1's epsilon_budget", "owner 0's steps",
                 "privacy.delta", "privacy.max_lifetime_epsilon", "client_level.epsilon",
                 "privacy.class_shares.shares"):
        assert f"report.json: {what} is" in out, what


def test_a_config_rewritten_after_the_run_is_caught(fed, capsys):
    """More owner-level noise in config.toml, and in every release to match: owners signed."""
    path = fed / "run" / "config.toml"
    path.write_text(path.read_text().replace("client-noise = 1.0", "client-noise = 4.0"))
    lines = _lines(fed)
    for e in lines:
        if e["mechanism"] == "gaussian-aggregate":
            e.update(noise_multiplier=4.0, epsilon=0.1, lifetime_epsilon=0.1)
    _forge(fed, lines)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "signed another proposal than config.toml" in out


def test_a_run_record_emptied_under_a_made_up_run_id_is_caught(fed, capsys):
    _forge(fed, [])
    for path in [fed / "run" / "report.json", *(fed / "run" / "checkpoints").glob("*.pt")]:
        if path.suffix == ".json":
            report = json.loads(path.read_text())
            report["run_id"], report["privacy"]["per_client"] = 12345, []
            path.write_text(json.dumps(report))
        else:
            payload = torch.load(path, weights_only=True)
            payload["server"]["run_id"] = 12345
            torch.save(payload, path)
    code, out = _audit(fed, capsys)
    assert code == EXIT_FINDING and "not attested by its owners" in out


def test_without_the_owners_ledgers_the_audit_does_not_vouch(fed, capsys):
    code = main(["audit", str(fed / "run"), "--owner-keys", str(fed / "owners")])
    out = capsys.readouterr().out
    assert code == EXIT_FINDING and "their own ledgers were not given" in out


def test_without_the_owners_keys_the_audit_does_not_vouch(fed, capsys):
    code = main(["audit", str(fed / "run"), "--owner-ledgers", str(fed / "owners"),
                 "--owner-keys", str(fed / "run")])
    out = capsys.readouterr().out
    assert code == EXIT_FINDING and "no public key to check its signatures" in out


def test_an_altered_line_without_new_hashes_is_a_broken_chain(fed, capsys):
    path = fed / "run" / "ledger.jsonl"
    path.write_text(path.read_text().replace('"steps":4', '"steps":1', 1))
    code, out = _audit(fed, capsys)
    assert code == EXIT_BROKEN and "hash does not match" in out
