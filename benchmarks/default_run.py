"""Measure the default `fedsynth simulate` (TSTR, wall time, epsilon) over seeds and budgets.

    .venv/bin/python benchmarks/default_run.py --epsilons 8,2,inf --seeds 0,1,2 --out runs/bench

Each cell is a real run (Flower Simulation Engine, Opacus); the table is printed as
markdown with the median TSTR per budget, and every run is audited.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    """Run the grid and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilons", default="8,2,inf")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-default"))
    parser.add_argument("extra", nargs="*", help="more flags for fedsynth simulate")
    args = parser.parse_args()
    rows = []
    for eps in args.epsilons.split(","):
        for seed in args.seeds.split(","):
            run_dir = args.out / f"eps{eps}-seed{seed}"
            if not (run_dir / "report.json").exists():
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "simulations.cli", "simulate", "--epsilon", eps,
                     "--seed", seed, "--out", str(run_dir), *args.extra],
                    check=True, stdout=subprocess.DEVNULL,
                )
                (run_dir / "wall.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
            report = json.loads((run_dir / "report.json").read_text())
            audit = 0
            if report["privacy"]["dp"]:
                audit = subprocess.run(
                    [sys.executable, "-m", "simulations.cli", "audit", str(run_dir)],
                    stdout=subprocess.DEVNULL, check=False,
                ).returncode
            spent = [c["epsilon"] for c in report["privacy"]["per_client"] if c["epsilon"]]
            rows.append((eps, seed, report["utility"]["tstr_accuracy"],
                         report["utility"]["trtr_accuracy"], max(spent, default=0.0),
                         float((run_dir / "wall.txt").read_text()), audit))
    print("| ε | seed | TSTR | TRTR | max ε spent | wall s | audit exit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for eps, seed, tstr, trtr, spent, wall, audit in rows:
        print(f"| {eps} | {seed} | {tstr:.3f} | {trtr:.3f} | {spent:.3f} | {wall:.0f} | {audit} |")
    print()
    for eps in args.epsilons.split(","):
        vals = [r[2] for r in rows if r[0] == eps]
        print(f"ε = {eps}: median TSTR {statistics.median(vals):.3f} over {len(vals)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
