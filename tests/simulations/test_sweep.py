"""`fedsynth sweep`: every cell runs for real, results are tidy, and a rerun resumes."""

import math

import pandas as pd

from simulations.cli import main


def test_sweep_runs_cells_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--epsilons", "8,inf", "--seeds", "1", "--rounds", "1",
            "--num-clients", "3", "--out", str(out)]
    assert main(args) == 0
    frame = pd.read_csv(out / "sweep.csv")
    assert len(frame) == 2 and set(frame.model) == {"vae"}
    assert math.isinf(frame.epsilon.max()) and frame.epsilon.min() == 8
    assert frame.tstr_lr.between(0, 1).all() and frame.trtr_lr.gt(0.9).all()
    assert (out / "tradeoff.png").stat().st_size > 1000
    assert "| vae | ∞ (no DP) |" in (out / "sweep.md").read_text()
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 2


def test_sweep_rejects_a_bad_epsilon_list(capsys):
    assert main(["sweep", "--epsilons", "1,zero"]) == 2
    assert "--epsilons: 'zero' is not a number or inf" in capsys.readouterr().err
