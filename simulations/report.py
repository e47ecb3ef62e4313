"""The run's report: ``report.json`` for machines, ``report.md`` and a terminal table for people."""

from __future__ import annotations

import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from client.dataset import LabelledData, train_holdout
from genai_models import BUILTIN_SPECS
from server.atomic import write_text
from simulations.utility import tstr_trtr

RELATION = (
    "record-level: add or remove one record of one owner's data "
    "(each owner's guarantee covers its own records)"
)
CLIENT_RELATION = (
    "owner-level: add or remove one owner's entire contribution to the federation's "
    "releases (the global models and the synthetic data)"
)


def fedsynth_version() -> str:
    """The installed distribution's version."""
    try:
        return version("fedsynth")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def build_report(run_config: dict, state, timings: dict, utility: dict) -> dict:
    """The machine-readable summary (DESIGN.md's report.json schema)."""
    epsilon = float(run_config["epsilon"])
    private = math.isfinite(epsilon)
    per_client = [
        {
            "client_id": o.client_id,
            "epsilon": o.epsilon if private else None,
            "epsilon_budget": _finite_or_none(o.budget) if private else None,
            "steps": o.steps,
            "rounds_trained": o.rounds,
            "num_examples": o.num_examples,
            "exhausted": o.exhausted,
        }
        for o in sorted(state.owners.values(), key=lambda o: o.client_id)
    ]
    client_level = None
    if run_config.get("client-dp", "none") != "none":
        client_level = {
            "mode": run_config["client-dp"],
            "epsilon": state.client_level_epsilon,
            "delta": float(run_config["client-delta"]),
            "noise_multiplier": float(run_config["client-noise"]),
            "clip": float(run_config["client-clip"]),
            "accountant": "rdp (Flower's, dp-accounting backend)",
            "relation": CLIENT_RELATION,
        }
    return {
        "fedsynth_version": fedsynth_version(),
        "model": run_config["model"],
        "dataset": run_config["dataset"],
        "num_clients": int(run_config["num-clients"]),
        "rounds_requested": int(run_config["rounds"]),
        "rounds_completed": state.rounds_completed,
        "privacy": {
            "dp": private,
            "delta": float(run_config["delta"]) if private else None,
            "epsilon_budget": _finite_or_none(epsilon),
            "accountant": run_config["accountant"] if private else None,
            "relation": RELATION if private else "none: trained without differential privacy",
            "max_epsilon": max((c["epsilon"] for c in per_client), default=0.0) if private
            else None,
            "per_client": per_client,
            "client_level": client_level,
            "ledger_head": state.ledger_head,
        },
        "utility": utility,
        "fidelity": {},
        "attacks": {},
        "rejected_updates": state.rejected,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def render_markdown(report: dict, run_dir: Path) -> str:
    """A short human summary with links to the artifacts."""
    p, u = report["privacy"], report["utility"]
    lines = [
        f"# fedsynth run: {report['model']} on {report['dataset']}",
        "",
        f"- owners: {report['num_clients']}; rounds completed: {report['rounds_completed']}"
        f" of {report['rounds_requested']}",
    ]
    if p["dp"]:
        lines += [
            f"- privacy: (ε = {p['epsilon_budget']}, δ = {p['delta']}) per owner, "
            f"{p['accountant']} accountant; largest ε spent {p['max_epsilon']:.3f}",
            f"- neighbouring relation: {p['relation']}",
        ]
    else:
        lines.append("- privacy: **none** (ε = ∞): the non-private baseline")
    if p["client_level"]:
        c = p["client_level"]
        eps = f"{c['epsilon']:.3f}" if c["epsilon"] is not None else "n/a (no release)"
        lines += [
            f"- owner-level DP ({c['mode']} clipping, noise {c['noise_multiplier']}): "
            f"ε = {eps}, δ = {c['delta']}",
            f"- neighbouring relation: {c['relation']}",
        ]
    lines += [
        "",
        "## Utility (logistic regression, tested on the holdout)",
        "",
        "| trained on | accuracy | macro-F1 |",
        "| --- | --- | --- |",
        f"| synthetic (TSTR) | {u['tstr_accuracy']:.3f} | {u['tstr_macro_f1']:.3f} |",
        f"| real (TRTR) | {u['trtr_accuracy']:.3f} | {u['trtr_macro_f1']:.3f} |",
        "",
        "## Privacy spent per owner",
        "",
        "| owner | records | steps | ε | budget | exhausted |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in p["per_client"]:
        eps = f"{c['epsilon']:.3f}" if c["epsilon"] is not None else "∞"
        budget = c["epsilon_budget"] if c["epsilon_budget"] is not None else "∞"
        lines.append(
            f"| {c['client_id']} | {c['num_examples']} | {c['steps']} | {eps} | {budget} | "
            f"{'yes' if c['exhausted'] else 'no'} |"
        )
    lines += [
        "",
        "## Artifacts",
        "",
        "- [samples.png](synthetic/samples.png): synthetic samples, one row per class",
        "- [synthetic.npz](synthetic/synthetic.npz): released data (`x`, `y`)",
        "- [ledger.jsonl](ledger.jsonl): hash-chained privacy events; "
        "`fedsynth audit` recomputes every ε from it",
        "- [privacy_budget.png](privacy_budget.png): cumulative ε per owner per round",
        "- [config.toml](config.toml): the resolved configuration",
        "",
        "![samples](synthetic/samples.png)",
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()),
        "",
    ]
    return "\n".join(lines)


def print_summary(report: dict, run_dir: Path, console: Console | None = None) -> None:
    """The short table a user sees at the end of a run."""
    console = console or Console(highlight=False)
    p, u = report["privacy"], report["utility"]
    table = Table(title=f"fedsynth · {report['model']} on {report['dataset']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    rounds = f"{report['rounds_completed']} / {report['rounds_requested']}"
    table.add_row("rounds completed", rounds)
    spent = [c["epsilon"] for c in p["per_client"]]
    if p["dp"]:
        if spent:
            table.add_row("ε per owner (min / max)", f"{min(spent):.3f} / {max(spent):.3f}")
        else:
            table.add_row("ε per owner", "nothing spent (no owner trained)")
        table.add_row("budget (ε, δ)", f"({p['epsilon_budget']}, {p['delta']:g})")
        table.add_row("owners exhausted", str(sum(c["exhausted"] for c in p["per_client"])))
    else:
        table.add_row("privacy", "none (ε = ∞)")
    if p["client_level"] and p["client_level"]["epsilon"] is not None:
        c = p["client_level"]
        table.add_row("owner-level (ε, δ)", f"({c['epsilon']:.3f}, {c['delta']:g})")
    table.add_row("TSTR accuracy", f"{u['tstr_accuracy']:.3f}")
    table.add_row("TRTR accuracy", f"{u['trtr_accuracy']:.3f}")
    table.add_row("run directory", str(run_dir))
    console.print(table)


def finish_run(run_dir: Path, run_config: dict, state, timings: dict) -> dict:
    """Evaluate the release against the holdout and write report.json and report.md."""
    import time

    t0 = time.perf_counter()
    spec = BUILTIN_SPECS[run_config["dataset"]]
    train, holdout = train_holdout(
        run_config["dataset"], float(run_config["holdout"]), int(run_config["seed"])
    )
    with np.load(run_dir / "synthetic" / "synthetic.npz") as synth:
        synthetic = LabelledData(synth["x"] / spec.value_max, synth["y"])
    utility = tstr_trtr(synthetic, train, holdout)
    timings = {**timings, "evaluation": time.perf_counter() - t0}
    report = build_report(run_config, state, timings, utility)
    if (run_dir / "ledger.jsonl").exists():
        from simulations.audit import read_ledger
        from simulations.privacy_plot import plot_privacy_budget

        plot_privacy_budget(read_ledger(run_dir / "ledger.jsonl"), run_dir / "privacy_budget.png")
    write_text(run_dir / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text(run_dir / "report.md", render_markdown(report, run_dir))
    print_summary(report, run_dir)
    return report
