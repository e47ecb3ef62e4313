"""Issue 12's bad inputs, each one line on stderr, exit 2, nothing written, no budget spent.

The rest of the list lives beside the code it checks: test_cli_errors.py (flags, config
files, keygen, certs), tests/genai_models/test_table_codec.py (bad cells of a CSV),
tests/simulations/test_audit.py (broken reports, checkpoints and ledgers).
"""

import csv

import pytest
import tomli_w

from privacy.experiment import ExperimentConfig
from simulations.cli import main


def _one_line_exit_2(capsys, argv, expected):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("args", "expected"), [
    (["--hidden-dim", "1e9"], "hidden-dim='1e9' must be an integer (digits only)"),
    (["--rounds", "2.7"], "rounds='2.7' must be an integer"),
    (["--rounds", "true"], "rounds='true' must be an integer"),
    (["--epsilon", "abc"], "epsilon='abc' must be a number"),
    (["--synthetic-samples", "1000000000000"], "synthetic-samples=1000000000000 is not allowed"),
    (["--canaries", "1000000000"], "canaries=1000000000 is not allowed; expected an integer in"),
    (["--server-learning-rate", "1e308"], "server-learning-rate=1e+308 is not allowed"),
    (["--holdout", "0.9999"], "holdout=0.9999 leaves no training records or no holdout"),
    (["--holdout", "0"], "holdout=0.0 is not allowed"),
    (["--nonsense", "1"], "unrecognized arguments: --nonsense 1"),
])
def test_bad_flag_values(tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    _one_line_exit_2(capsys, ["simulate", *args, "--out", str(out)], expected)
    assert not out.exists()


def test_out_naming_a_file_or_an_impossible_path(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    _one_line_exit_2(capsys, ["simulate", "--out", str(tmp_path / "afile")], "is a file")
    assert (tmp_path / "afile").read_text() == "mine"
    _one_line_exit_2(capsys, ["simulate", "--out", "/proc/x"], "/proc/x")


def test_a_binary_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(bytes(range(256)))
    _one_line_exit_2(capsys, ["simulate", "--config", str(cfg)], "not valid TOML")


def test_twenty_rows_for_ten_owners(tmp_path, capsys):
    data = tmp_path / "t.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "y"])
        w.writerows([[i / 20, i % 2] for i in range(20)])
    schema = tmp_path / "s.toml"
    schema.write_text('target = "y"\n\n[[columns]]\nname = "a"\ntype = "continuous"\n'
                      'min = 0\nmax = 1\n\n[[columns]]\nname = "y"\ntype = "categorical"\n'
                      'categories = ["0", "1"]\n')
    _one_line_exit_2(capsys, ["simulate", "--data", str(data), "--schema", str(schema),
                              "--num-clients", "10", "--out", str(tmp_path / "run")],
                     "num-clients=10: a dirichlet split (alpha 1) of 14 training records")


def test_data_without_a_schema_says_how_to_get_one(tmp_path, capsys):
    _one_line_exit_2(capsys, ["simulate", "--data", "t.csv", "--out", str(tmp_path / "r")],
                     "--data t.csv needs its public schema: --schema FILE.toml (draft one "
                     "with `fedsynth schema infer t.csv`")


def test_schema_infer_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    data = tmp_path / "t.csv"
    data.write_text("a,y\n1,0\n2,1\n")
    _one_line_exit_2(capsys, ["schema", "infer", str(data), "--out",
                              str(tmp_path / "afile" / "s.toml")], "(" + str(tmp_path / "afile")
                     + " is a file)")


@pytest.fixture
def finished(tmp_path):
    """A run directory as evaluate reads it: config.toml and a report (the release varies)."""
    run = tmp_path / "run"
    run.mkdir()
    config = ExperimentConfig(epsilon=float("inf"), run_dir=str(run)).to_run_config()
    (run / "config.toml").write_text(tomli_w.dumps(config))
    (run / "report.json").write_text('{"privacy": {"dp": false, "max_epsilon": null}, '
                                     '"timings": {}}')
    return run


def test_evaluate_without_a_release_or_with_a_truncated_one(finished, capsys):
    _one_line_exit_2(capsys, ["evaluate", str(finished)], "no release to evaluate")
    (finished / "synthetic").mkdir()
    (finished / "synthetic" / "synthetic.npz").write_bytes(b"PK\x03\x04 cut short")
    _one_line_exit_2(capsys, ["evaluate", str(finished)], "the release cannot be read")


@pytest.mark.parametrize("text", ["{}", '{"privacy": 3}', "[]", '{"privacy": {"dp": tr'])
def test_evaluate_a_report_that_is_not_one(finished, capsys, text):
    (finished / "report.json").write_text(text)
    _one_line_exit_2(capsys, ["evaluate", str(finished)], "report.json")


def test_owner_ledgers_naming_a_file_leaves_nothing_behind(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "run"
    _one_line_exit_2(capsys, ["simulate", "--owner-ledgers", str(tmp_path / "afile"),
                              "--out", str(out)], "--owner-ledgers: ")
    assert not out.exists()


def test_too_few_synthetic_samples_to_judge_are_refused_before_any_spend(tmp_path, capsys):
    _one_line_exit_2(capsys, ["simulate", "--synthetic-samples", "1", "--out",
                              str(tmp_path / "r")],
                     "synthetic-samples=1 is not allowed; expected an integer in 100..1000000")


@pytest.mark.parametrize("text", ["{", "[]", '{"budgets": {"0": "x"}, "owner_ledgers": "l"}',
                                  '{"budgets": {}, "owner_ledgers": 5}'])
def test_resume_with_a_damaged_simulation_json(tmp_path, capsys, text):
    run = tmp_path / "run"
    run.mkdir()
    config = ExperimentConfig(run_dir=str(run)).to_run_config()
    (run / "config.toml").write_text(tomli_w.dumps(config))
    (run / "simulation.json").write_text(text)
    _one_line_exit_2(capsys, ["simulate", "--resume", str(run)], "simulation.json is damaged")
