"""Bad input: one line naming the flag or key, the value and what is allowed; exit 2; no files."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from privacy.experiment import ConfigError, ExperimentConfig
from simulations.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "diffusion"], "model='diffusion' is not allowed; expected one of gan, vae"),
        (["--dataset", "imagenet"], "dataset='imagenet' is not allowed; expected one of digits"),
        (["--epsilon", "0"], "epsilon=0.0 is not allowed; expected a number > 0"),
        (["--epsilon", "-1"], "epsilon=-1.0 is not allowed"),
        (["--delta", "0.05"], "delta=0.05 is not allowed; expected a value below 1/"),
        (["--num-clients", "5000"], "num-clients: num-clients=5000 exceeds the 1257 training"),
        (["--partition", "zipf"], "partition='zipf' is not allowed; expected one of iid, dirichlet"),
        (["--config", "/nonexistent/x.toml"], "--config: file '/nonexistent/x.toml' does not exist"),
        (["--rounds", "0"], "rounds=0 is not allowed; expected an integer in 1..100000"),
        (["--budgets", "0=inf"], "budgets: owner 0 has epsilon inf; expected a finite number > 0"),
        (["--epsilon", "inf", "--budgets", "0=2"], "ε = inf applies to the whole run"),
        (["--sample-rate", "0"], "sample-rate=0.0 is not allowed; expected a probability in (0, 1]"),
        (["--seed", "-1"], "seed=-1 is not allowed; expected an integer in 0..4294967295"),
        (["--aggregation", "mean"], "aggregation='mean' is not allowed; expected one of fedavg, median, trimmed-mean, krum"),
        (["--aggregation", "krum"], "server-momentum=0.5 is not allowed; expected 0 with --aggregation krum"),
        (["--schema", "x.toml"], "--schema is for --data FILE.csv"),
        (["--epsilon", "0.1"], "use --accountant prv for smaller budgets"),
        (["--budgets", "0=x"], "budgets: '0=x' is not OWNER=EPSILON"),
        (["--budgets", "12=1"], "budgets='12=1' is not allowed; expected owner ids in 0..9"),
        (["--client-dp", "fixed"], "server-momentum=0.5 is not allowed; expected 0 with --client-dp"),
        (["--client-dp", "adaptive"], "client-dp='adaptive' is not allowed; expected one of none, fixed"),
        (["--fraction", "0"], "fraction=0.0 is not allowed; expected a probability in (0, 1]"),
        (["--optimizer", "lbfgs"], "optimizer='lbfgs' is not allowed; expected one of sgd, adam"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    code = main(["simulate", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_key_in_config_file_is_named(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('modell = "vae"\n')
    assert main(["simulate", "--config", str(cfg)]) == 2
    assert f"--config {cfg}: unknown key 'modell'; allowed:" in capsys.readouterr().err


def test_wrong_type_in_config_file_is_named(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('rounds = "many"\n')
    assert main(["simulate", "--config", str(cfg)]) == 2
    assert "rounds='many' must be an integer (digits only)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rounds = 2.7\n", "rounds=2.7 must be a whole number"),
        ("rounds = true\n", "rounds=True must be int"),
        ("epsilon = true\n", "epsilon=True must be float"),
        ('budgets = "0=inf"\n', "budgets: owner 0 has epsilon inf"),
    ],
)
def test_config_values_are_typed_strictly(tmp_path, capsys, text, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert expected in capsys.readouterr().err


def test_non_empty_out_dir_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["simulate", "--out", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "simulate", "--model", "nope"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "fedsynth: error: model='nope' is not allowed; expected one of gan, vae"
    )


def test_defaults_match_the_flower_app_config():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["flwr"]["app"]["config"] == ExperimentConfig().to_run_config()


def test_owner_ledgers_of_another_split_are_refused_before_anything_runs(tmp_path, capsys):
    ledgers = tmp_path / "owners"
    ledgers.mkdir()
    (ledgers / "client-0.jsonl.partition.json").write_text('{"dataset": "digits", "seed": 5}')
    code = main(["simulate", "--owner-ledgers", str(ledgers), "--out", str(tmp_path / "run")])
    assert code == 2
    assert "holds the ledgers of another split of the data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_owner_makes_its_own_signing_key_and_it_is_never_overwritten(tmp_path, capsys):
    from simulations.cli import main

    key = tmp_path / "owner-0.key"
    assert main(["keygen", str(key)]) == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600" and (tmp_path / "owner-0.pub").is_file()
    before = key.read_bytes()
    assert main(["keygen", str(key)]) == 2
    assert "is never overwritten" in capsys.readouterr().err and key.read_bytes() == before


def test_paths_under_a_file_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["certs", str(tmp_path / "afile")]) == 2
    assert "certs: " in capsys.readouterr().err
    assert main(["certs", str(tmp_path / "afile" / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Not a directory" in err


def test_a_target_with_one_class_is_refused_before_any_budget_is_spent(tmp_path, capsys):
    schema = tmp_path / "one.toml"
    schema.write_text('target = "y"\n\n[[columns]]\nname = "x"\ntype = "continuous"\nmin = 0\n'
                      'max = 1\n\n[[columns]]\nname = "y"\ntype = "categorical"\n'
                      'categories = ["a", "b"]\n')
    data = tmp_path / "one.csv"
    data.write_text("x,y\n" + "".join(f"{i / 100},a\n" for i in range(100)))
    out = tmp_path / "run"
    code = main(["simulate", "--data", str(data), "--schema", str(schema), "--num-clients", "2",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "the target column has one class in the training records" in err
    assert not out.exists()


def test_p6_binds_on_the_largest_owner_and_each_owner_declares_its_records(tmp_path):
    """P6 for every owner: a delta that only the smallest owner's size allows is refused."""
    from simulations.owners import check_delta, owner_policies, owner_sizes

    config = ExperimentConfig(num_clients=10, alpha=0.3)
    sizes = owner_sizes(config)
    assert min(sizes) < max(sizes)
    loose = ExperimentConfig(num_clients=10, alpha=0.3, delta=1 / max(sizes))
    with pytest.raises(ConfigError, match=f"largest owner holds {max(sizes)} records"):
        check_delta(loose)
    assert check_delta(config) == sizes
    policies = owner_policies(config, sizes, {}, tmp_path)
    assert [p.max_records for p in policies] == sizes
    with_canaries = ExperimentConfig(num_clients=10, alpha=0.3, canaries=7)
    assert owner_sizes(with_canaries) == [sizes[0] + 7, *sizes[1:]]
