"""Tables end to end: any CSV with a public schema, VAE and GAN, from the CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from genai_models import build_model, resolve
from genai_models.schema import load_schema
from server.release import release_table

SCHEMA = """
target = "outcome"

[[columns]]
name = "age"
type = "integer"
min = 18
max = 90

[[columns]]
name = "income"
type = "continuous"
min = 0
max = 200000
nullable = true

[[columns]]
name = "smoker"
type = "boolean"

[[columns]]
name = "region"
type = "categorical"
categories = ["north", "south", "east", "west"]

[[columns]]
name = "outcome"
type = "categorical"
categories = ["healthy", "sick"]
"""


def _write_csv(path, n=360, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    smoker = rng.random(n) < 0.3
    region = rng.choice(["north", "south", "east", "west"], n)
    income = rng.normal(50000, 15000, n).round(2).astype(object)
    income[rng.random(n) < 0.1] = ""
    sick = (age > 55) | (smoker & (rng.random(n) < 0.7))
    pd.DataFrame({"age": age, "income": income, "smoker": np.where(smoker, "yes", "no"),
                  "region": region, "outcome": np.where(sick, "sick", "healthy")}).to_csv(
        path, index=False)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "simulations.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    _write_csv(root / "people.csv")
    (root / "people.toml").write_text(SCHEMA)
    return root


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_csv_with_mixed_types_runs_and_releases_schema_true_rows(table, model):
    out = table / f"run-{model}"
    proc = _cli("simulate", "--model", model, "--data", "people.csv", "--schema", "people.toml",
                "--num-clients", "3", "--rounds", "2", "--hidden-dim", "32",
                "--generator-average", "1", "--out", str(out), cwd=table)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    synth = pd.read_csv(out / "synthetic" / "synthetic.csv", dtype=str, keep_default_na=False)
    schema = load_schema(table / "people.toml")
    assert list(synth.columns) == [c.name for c in schema.columns]
    assert len(synth) == 2000
    ages = synth.age.astype(int)
    assert ages.between(18, 90).all()
    assert set(synth.region) <= {"north", "south", "east", "west"}
    assert set(synth.smoker.str.lower()) <= {"true", "false"}
    assert set(synth.outcome) <= {"healthy", "sick"}
    income = pd.to_numeric(synth.income.replace("", np.nan))
    assert income.dropna().between(0, 200000).all()
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "csv"
    assert 0 <= report["utility"]["tstr_accuracy"] <= 1
    assert report["utility"]["trtr_accuracy"] > 0.6
    assert 0 <= report["fidelity"]["detection_auc"] <= 1
    assert set(report["fidelity"]["columns"]) == {c.name for c in schema.columns}
    quality = report["fidelity"]["sdmetrics"]
    assert 0 < quality["quality"] <= 1 and quality["library"].startswith("sdmetrics ")
    assert f"{quality['quality']:.3f}" in (out / "report.md").read_text()
    risks = report["attacks"]["anonymeter"]
    assert risks["measured"] and risks["library"].startswith("anonymeter ")
    for attack in ("singling_out", "linkability", "inference"):
        assert 0 <= risks[attack]["risk"] <= 1 or "error" in risks[attack]
    assert "## Re-identification risks (Anonymeter)" in (out / "report.md").read_text()
    conditioned = report["privacy"]["condition_counts"]
    if model == "gan":  # training-by-sampling on region's 4 categories, from all 3 owners
        assert conditioned["owners"] == [0, 1, 2] and len(conditioned["counts"]) == 4
        assert "training-by-sampling" in (out / "report.md").read_text()
    else:
        assert conditioned is None
    assert _cli("audit", str(out), cwd=table).returncode == 0
    if model == "gan":
        assert "the average of the generators of rounds 1-2" in (out / "report.md").read_text()
        _released_from_the_average_of_the_generators(out, table, report, synth)
        # Counts rewritten in the report ("no one is from the west") are caught.
        conditioned["counts"] = [100.0, 100.0, 100.0, 0.0]
        (out / "report.json").write_text(json.dumps(report))
        audit = _cli("audit", str(out), cwd=table)
        assert audit.returncode == 1 and "privacy.condition_counts.counts" in audit.stdout
        (table / "people.toml").rename(table / "away.toml")  # the auditor lacks the schema
        try:
            audit = _cli("audit", str(out), cwd=table)
        finally:
            (table / "away.toml").rename(table / "people.toml")
        assert audit.returncode == 1 and "schema cannot be read" in audit.stdout, audit.stderr


def _released_from_the_average_of_the_generators(out, table, report, synth):
    """Window 1 of 2 rounds: (g1 + g2) / 2 released, not the last g2 (nor the initial g0)."""
    paths = [out / "checkpoints" / f"round-{r:03d}.pt" for r in range(3)]
    models = [torch.load(p, weights_only=True)["model"] for p in paths]
    kept = torch.load(paths[-1], weights_only=True)["average"]
    assert (kept["models"], kept["first_round"], kept["last_round"]) == (2, 1, 2)
    average = kept["generator"]
    for key, value in average.items():
        if value.is_floating_point():
            g = [m[f"generator.{key}"] for m in models]
            assert torch.allclose(value, (g[1] + g[2]) / 2, atol=1e-6), key
    spec, codec = resolve("csv", str(table / "people.toml"))
    gan = build_model("gan", spec, hidden_dim=32, latent_dim=4)
    gan.load_state_dict(models[-1])
    gan.generator.load_state_dict(average)
    gan.condition_on(report["privacy"]["condition_counts"]["counts"])
    shares = report["privacy"]["class_shares"]["shares"]

    def released(where):
        release_table(gan, codec, 2000, 0, out / where, shares)
        return pd.read_csv(out / where / "synthetic.csv", dtype=str, keep_default_na=False)

    assert released("again").equals(synth)
    gan.load_state_dict(models[-1])  # the last generator alone would have released other rows
    assert not released("last").equals(synth)


def test_a_malformed_csv_is_one_line_and_exit_2(table):
    bad = table / "bad.csv"
    text = (table / "people.csv").read_text().splitlines()
    text[5] = text[5].replace("north", "mars").replace("south", "mars").replace(
        "east", "mars").replace("west", "mars")
    bad.write_text("\n".join(text) + "\n")
    proc = _cli("simulate", "--data", "bad.csv", "--schema", "people.toml",
                "--out", str(table / "never"), cwd=table)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "bad.csv: row 5 (line 6), column 'region': unknown category" in proc.stderr
    assert "'mars'" in proc.stderr and not (table / "never").exists()


def test_a_malformed_schema_is_one_line_and_exit_2(table):
    (table / "bad.toml").write_text(SCHEMA.replace('type = "boolean"', 'type = "bool"'))
    proc = _cli("simulate", "--data", "people.csv", "--schema", "bad.toml", cwd=table)
    assert proc.returncode == 2
    assert "bad.toml: column 'smoker': type='bool'; allowed:" in proc.stderr


def test_builtin_table_runs_with_its_shipped_schema(table):
    out = table / "bc"
    proc = _cli("simulate", "--dataset", "breast-cancer", "--num-clients", "2", "--rounds", "2",
                "--out", str(out), cwd=table)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["utility"]["trtr_accuracy"] > 0.9
    assert "DESCR" in report["fidelity"]["bounds_source"]


def test_schema_infer_drafts_a_loadable_schema_and_warns(table):
    proc = _cli("schema", "infer", "people.csv", "--out", "draft.toml", cwd=table)
    assert proc.returncode == 0
    assert "leak" in proc.stderr
    draft = load_schema(table / "draft.toml")
    types = {c.name: c.type for c in draft.columns}
    assert types == {"age": "integer", "income": "continuous", "smoker": "boolean",
                     "region": "categorical", "outcome": "categorical"}
    assert next(c for c in draft.columns if c.name == "income").nullable
