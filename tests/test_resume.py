"""One Ctrl-C stops a run at once and leaves nothing running; it resumes, nothing spent twice.

Real processes: `fedsynth simulate` (a GAN, whose release averages the rounds'
generators) gets SIGINT once round 2's checkpoint exists, then `fedsynth simulate
--resume` finishes it. Long: `make test-faults`.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from privacy.ledger import read_ledger
from server.generator_average import ema_decay
from simulations.cli import main

pytestmark = pytest.mark.faults


def _session(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


def test_a_killed_run_resumes_without_spending_twice(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("hidden-dim = 16\nlatent-dim = 2\nsynthetic-samples = 100\n")
    run, owners = tmp_path / "run", tmp_path / "owners"
    cmd = [sys.executable, "-m", "simulations.cli", "simulate", "--config", str(cfg),
           "--model", "gan", "--num-clients", "2", "--rounds", "4", "--out", str(run),
           "--owner-ledgers", str(owners)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "round-002.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "round 2 never finished"
        time.sleep(0.2)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130 and time.time() - t0 < 5
    time.sleep(1)
    left = [p for p in psutil.process_iter(["pid"]) if _session(p.pid) == proc.pid]
    assert not left, f"processes left behind: {left}"
    assert not (run / "report.json").exists()
    assert f"fedsynth simulate --resume {run}" in proc.stderr.read()
    # Anything else is refused: the run's own configuration only, and not a second time.
    assert main(["simulate", "--resume", str(run), "--rounds", "9"]) == 2
    assert "--resume takes the run's own configuration; drop --rounds" in capsys.readouterr().err

    done = subprocess.run([sys.executable, "-m", "simulations.cli", "simulate", "--resume",
                           str(run)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming" in done.stdout
    report = json.loads((run / "report.json").read_text())
    assert report["rounds_completed"] == 4
    server = read_ledger(run / "ledger.jsonl")
    for cid in (0, 1):
        spends = [e for e in read_ledger(owners / f"client-{cid}.jsonl")
                  if e["mechanism"] == "dp-sgd"]
        assert len({e["run_id"] for e in spends}) == 1  # one run, before and after the kill
        rounds = [e["round"] for e in spends]
        assert len(rounds) == len(set(rounds)) and {1, 2} <= set(rounds)  # none spent twice
        # Every spend is the server's (embedded verbatim), and the server counted no round
        # the owner did not spend. A round may lack a spend only when the owner's node
        # failed in it (seen once: Ray's ActorUnavailableError as the resumed simulation
        # started), which the server ledgers as that node's error.
        mine = [e for e in server if e.get("client_id") == cid]
        assert {e["hash"] for e in spends} == {e["owner_entry"]["hash"] for e in mine
                                               if (e.get("owner_entry") or {}).get(
                                                   "mechanism") == "dp-sgd"}
        for missing in set(range(1, 5)) - set(rounds):
            assert any(e["round"] == missing and e.get("verdict") == "rejected"
                       and "error" in e["reason"] for e in mine), missing
    _the_average_went_on_across_the_stop(run, decay=ema_decay(0.33, 4))
    audit = subprocess.run([sys.executable, "-m", "simulations.cli", "audit", str(run),
                            "--owner-ledgers", str(owners)], capture_output=True, text=True,
                           timeout=300)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    again = subprocess.run([sys.executable, "-m", "simulations.cli", "simulate", "--resume",
                            str(run)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "is a finished run" in again.stderr


def _the_average_went_on_across_the_stop(run, decay):
    """The last checkpoint's generator average folds in every round's generator, 1 to 4."""
    models = [torch.load(run / "checkpoints" / f"round-{r:03d}.pt", weights_only=True)["model"]
              for r in range(1, 5)]
    kept = torch.load(run / "checkpoints" / "round-004.pt", weights_only=True)["average"]
    assert (kept["models"], kept["first_round"], kept["last_round"]) == (4, 1, 4)
    for name, value in kept["generator"].items():
        if value.is_floating_point():
            expected = models[0][f"generator.{name}"]
            for n, m in enumerate(models[1:], start=1):
                expected = expected.lerp(m[f"generator.{name}"], max(1 - decay, 1 / (n + 1)))
            assert torch.allclose(value, expected, atol=1e-6), name
