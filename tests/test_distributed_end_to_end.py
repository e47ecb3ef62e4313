"""`--noise distributed` end to end: real Flower Simulation Engine, real SecAgg+, real Opacus.

Tiny (3 owners, 2 rounds, a small model). One run where every owner is in every sum,
and (a fault scenario, ``make test-faults``) one where an owner cannot take part and the
sum of the two others is never released.
"""

import json
import subprocess
import sys

import pytest
import torch

from simulations.accounting import recompute_epsilon
from tests.test_end_to_end import _simulate as simulate_tiny

DISTRIBUTED = ("--noise", "distributed", "--sample-rate", "0.5")


def _simulate(tmp_path, *extra):
    return simulate_tiny(tmp_path, *DISTRIBUTED, *extra)


def _lines(out):
    return [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]


def _audit(out):
    return subprocess.run([sys.executable, "-m", "simulations.cli", "audit", str(out)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def secure_run(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("secure"), "--dropout-margin", "0.34")


def test_every_round_is_one_secure_sum_of_signed_shares(secure_run):
    out, stdout = secure_run
    lines = _lines(out)
    assert len(lines) == 6 and {e["verdict"] for e in lines} == {"accepted"}
    for e in lines:  # one step each, the plan's noise, the trust assumption stated
        assert e["steps"] == 1 and e["noise"] == "distributed" and e["survivors"] == 2
        assert e["colluders"] == 0 and e["owner_entry"]["noise_share"] == e["noise_share"]
        assert e["secagg_participants"] == 3 and e["secagg_threshold"] == 2
        assert "update_norm" not in e  # the coordinator never saw an owner's update
    report = json.loads((out / "report.json").read_text())
    # Owners' masks and the coordinator's unmasking agree (privacy.secagg_masks): a sum
    # unmasked with another generator would be noise of norm ~2^31 and clipped.
    assert not report["clipped_updates"]
    assert "SecAgg+" in report["privacy"]["noise_mode"]
    assert "at most 0 of the registered owners" in report["privacy"]["noise_mode"]
    assert "SecAgg+" in (out / "report.md").read_text()
    for c in report["privacy"]["per_client"]:
        events = [e for e in lines if e["client_id"] == c["client_id"]]
        assert c["epsilon"] == pytest.approx(recompute_epsilon(events, delta=1e-5,
                                                               method="rdp"), rel=0.01)
        assert c["epsilon"] <= 8.0
    first = torch.load(out / "checkpoints" / "round-000.pt", weights_only=False)["model"]
    last = torch.load(out / "checkpoints" / "round-002.pt", weights_only=False)["model"]
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the sums were applied
    proc = _audit(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_gan_shares_its_discriminator_and_the_coordinator_trains_its_generator(tmp_path):
    out, _ = _simulate(tmp_path, "--model", "gan", "--optimizer", "adam", "--learning-rate",
                       "0.002", "--dropout-margin", "0.34")
    lines = _lines(out)
    assert len(lines) == 6 and {e["verdict"] for e in lines} == {"accepted"}
    assert all(e["steps"] == 1 and e["noise"] == "distributed" for e in lines)
    first = torch.load(out / "checkpoints" / "round-000.pt", weights_only=False)["model"]
    last = torch.load(out / "checkpoints" / "round-002.pt", weights_only=False)["model"]
    for net in ("discriminator.", "generator."):  # the sums moved one, the coordinator the other
        assert any(not torch.equal(first[k], last[k]) for k in first if k.startswith(net))
    proc = _audit(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.faults
def test_a_sum_of_fewer_owners_than_promised_is_never_released(tmp_path):
    # Owner 2's own budget cannot take a step: it declines, and the two others are
    # fewer than the 3 every sum must hold (no dropout margin). SecAgg+ halts.
    out, stdout = _simulate(tmp_path, "--dropout-margin", "0", "--budgets", "2=0.01",
                            "--rounds", "1")
    lines = _lines(out)
    declined = [e for e in lines if e["client_id"] == 2]
    assert len(declined) == 1 and declined[0]["mechanism"] == "none"
    # The two others spent (their shares left them) but their sum was never unmasked.
    spent = [e for e in lines if e["mechanism"] == "dp-sgd"]
    assert sorted(e["client_id"] for e in spent) == [0, 1]
    assert all(e["verdict"] == "recorded" and "SecAgg+" in e["discarded"] for e in spent)
    first = torch.load(out / "checkpoints" / "round-000.pt", weights_only=False)["model"]
    last = torch.load(out / "checkpoints" / "round-001.pt", weights_only=False)["model"]
    assert all(torch.equal(first[k], last[k]) for k in first)  # nothing was released
    assert "discarded" in stdout
    proc = _audit(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
