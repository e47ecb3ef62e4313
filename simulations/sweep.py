"""``fedsynth sweep``: the privacy-utility trade-off over budgets, models and seeds.

Each cell is one ``fedsynth simulate`` run in its own process and run directory;
a cell whose ``report.json`` exists is skipped, so an interrupted sweep resumes.
The results become a tidy ``sweep.csv``, a ``tradeoff.png`` and a ``sweep.md``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from privacy.atomic import write_text, write_with

COLUMNS = ["model", "epsilon", "seed", "tstr_lr", "tstr_rf", "trtr_lr", "frechet_distance",
           "dcr_auc", "model_attack_auc", "empirical_epsilon", "max_epsilon_spent",
           "wall_seconds", "run_dir"]


def _cell_row(model: str, eps: float, seed: int, run_dir: Path, wall: float) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    u, a = report["utility"], report["attacks"]
    lr, rf = u["classifiers"]["logistic_regression"], u["classifiers"]["random_forest"]
    return {
        "model": model, "epsilon": eps, "seed": seed,
        "tstr_lr": lr["tstr"]["accuracy"], "tstr_rf": rf["tstr"]["accuracy"],
        "trtr_lr": lr["trtr"]["accuracy"],
        "frechet_distance": report["fidelity"].get("frechet_distance"),
        "dcr_auc": a["dcr"]["auc"],
        "model_attack_auc": a.get("model", {}).get("auc"),
        "empirical_epsilon": a["summary"]["max_empirical_epsilon"],
        "max_epsilon_spent": report["privacy"]["max_epsilon"],
        "wall_seconds": wall, "run_dir": str(run_dir),
    }


def run_sweep(
    *, epsilons: list[float], models: list[str], dataset: str, seeds: int, out: Path,
    extra: list[str],
) -> pd.DataFrame:
    """Run (or resume) every cell, then write sweep.csv, tradeoff.png and sweep.md."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cells = [(m, e, s) for m in models for e in epsilons for s in range(seeds)]
    for i, (model, eps, seed) in enumerate(cells, start=1):
        label = "inf" if math.isinf(eps) else f"{eps:g}"
        run_dir = out / f"{model}-eps{label}-seed{seed}"
        wall_file = run_dir / "wall_seconds.txt"
        if (run_dir / "report.json").exists():
            status = "done before, skipped"
        else:
            if run_dir.exists():  # an interrupted cell: start it again from nothing
                shutil.rmtree(run_dir)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "simulations.cli", "simulate", "--model", model,
                 "--dataset", dataset, "--epsilon", label, "--seed", str(seed),
                 "--out", str(run_dir), *extra],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
                print(f"[{i}/{len(cells)}] {run_dir.name}: FAILED ({' '.join(tail)})",
                      flush=True)
                continue
            write_text(wall_file, f"{time.perf_counter() - t0:.1f}\n")
            status = "ran"
        wall = float(wall_file.read_text()) if wall_file.exists() else float("nan")
        row = _cell_row(model, eps, seed, run_dir, wall)
        rows.append(row)
        print(f"[{i}/{len(cells)}] {run_dir.name}: {status} · TSTR {row['tstr_lr']:.3f} · "
              f"attack AUC {row['dcr_auc']:.3f} · empirical ε {row['empirical_epsilon']:.2f}",
              flush=True)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_text(out / "sweep.csv", frame.to_csv(index=False))
    if not frame.empty:
        plot_tradeoff(frame, out / "tradeoff.png")
        write_text(out / "sweep.md", render_sweep(frame))
    return frame


def _x(eps: pd.Series, finite_max: float) -> pd.Series:
    """Place ε = ∞ (no DP) one step right of the largest finite budget on a log axis."""
    return eps.where(eps.apply(math.isfinite), finite_max * 2.5)


def plot_tradeoff(frame: pd.DataFrame, path: Path) -> Path:
    """Utility and attack success against epsilon, median line and min-max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = frame.loc[frame.epsilon.apply(math.isfinite), "epsilon"]
    finite_max = float(finite.max()) if len(finite) else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = [("tstr_lr", "TSTR accuracy (logistic)"), ("model_attack_auc", "attack ROC AUC"),
              ("empirical_epsilon", "empirical ε (95% lower bound)")]
    for ax, (col, title) in zip(axes, panels, strict=True):
        for model, group in frame.groupby("model"):
            stats = group.groupby("epsilon")[col].agg(["median", "min", "max"]).reset_index()
            x = _x(stats.epsilon, finite_max)
            ax.plot(x, stats["median"], marker="o", label=model)
            ax.fill_between(x, stats["min"], stats["max"], alpha=0.2)
        if col == "tstr_lr":
            ax.axhline(frame.trtr_lr.median(), color="black", ls="--", lw=1, label="TRTR")
        if col == "empirical_epsilon" and len(finite):
            xs = sorted(finite.unique())
            ax.plot(xs, xs, color="grey", ls=":", lw=1, label="theoretical ε")
        if col == "model_attack_auc":
            ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ticks = sorted(finite.unique()) + ([finite_max * 2.5] if len(finite) < len(frame) else [])
        ax.set_xticks(ticks, [f"{t:g}" for t in sorted(finite.unique())]
                      + (["∞"] if len(ticks) > len(finite.unique()) else []))
        ax.set_xlabel("ε per owner")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("privacy-utility trade-off (median over seeds, band = min-max)")
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    plt.close(fig)
    return path


def render_sweep(frame: pd.DataFrame) -> str:
    """A markdown summary: medians per (model, ε) and where the plot is."""
    stats = (
        frame.groupby(["model", "epsilon"])
        .agg(seeds=("seed", "count"), tstr=("tstr_lr", "median"), tstr_rf=("tstr_rf", "median"),
             trtr=("trtr_lr", "median"), attack_auc=("model_attack_auc", "median"),
             dcr_auc=("dcr_auc", "median"), empirical_eps=("empirical_epsilon", "max"))
        .reset_index()
    )
    lines = ["# fedsynth sweep", "", "![trade-off](tradeoff.png)", "",
             "| model | ε | seeds | TSTR (logistic) | TSTR (forest) | TRTR | attack AUC (model) | "
             "attack AUC (DCR) | max empirical ε |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in stats.itertuples():
        eps = "∞ (no DP)" if math.isinf(r.epsilon) else f"{r.epsilon:g}"
        lines.append(f"| {r.model} | {eps} | {r.seeds} | {r.tstr:.3f} | {r.tstr_rf:.3f} | "
                     f"{r.trtr:.3f} | {r.attack_auc:.3f} | {r.dcr_auc:.3f} | "
                     f"{r.empirical_eps:.3f} |")
    lines += ["", "Medians over seeds; the empirical ε column is the largest over seeds and "
              "attacks, a lower bound to read against the theoretical ε of its row.", ""]
    return "\n".join(lines)
