"""How fedsynth scales with the number of simulated owners: wall time and peak memory.

The data set is **generated** (scikit-learn's ``make_classification``: 8 numeric
features, a binary target, 20 training records per owner), written as a CSV with a
public schema whose bounds are the generator's clipping range, so the run goes through
the same path as a user's file (``--dataset csv``). Each round samples owners with
``--fraction`` (Poisson, as DP-FedAvg's accounting assumes); every sampled owner trains
with DP-SGD and signs its ledger line.

Peak memory is the largest sum of resident set sizes over the whole process tree
(the CLI, the Ray head, every Ray worker), sampled twice a second: shared pages are
counted once per process, so it overstates the real footprint.

Run: ``.venv/bin/python benchmarks/scale.py --owners 1000 --rounds 10 --fraction 0.1``
(and ``--owners 10000 --rounds 5``). Prints one table row; ``--keep`` keeps the run.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

BOUND = 10.0  # public: the generated features are clipped to [-BOUND, BOUND] when written
RECORDS_PER_OWNER = 20
HOLDOUT = 0.3


def write_data(folder: Path, owners: int, seed: int) -> tuple[Path, Path]:
    """A generated CSV with enough rows for ``owners`` and its public schema."""
    from sklearn.datasets import make_classification

    rows = int(np.ceil(owners * RECORDS_PER_OWNER / (1 - HOLDOUT)))
    x, y = make_classification(n_samples=rows, n_features=8, n_informative=5,
                               n_redundant=2, random_state=seed)
    frame = pd.DataFrame(np.clip(x, -BOUND, BOUND), columns=[f"x{i}" for i in range(8)])
    frame["label"] = np.where(y == 1, "yes", "no")
    data = folder / "generated.csv"
    frame.to_csv(data, index=False)
    columns = "".join(
        f'[[columns]]\nname = "x{i}"\ntype = "continuous"\nmin = {-BOUND}\nmax = {BOUND}\n'
        "nullable = false\n\n" for i in range(8))
    schema = folder / "generated.toml"
    schema.write_text(
        'target = "label"\nbounds_source = "the generator\'s clipping range (public)"\n\n'
        f'{columns}[[columns]]\nname = "label"\ntype = "categorical"\n'
        'categories = ["no", "yes"]\nnullable = false\n')
    return data, schema


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of ``root`` and every descendant still alive."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def run(owners: int, rounds: int, fraction: float, seed: int, keep: bool) -> dict:
    """One ``fedsynth simulate`` on generated data; its wall time and peak tree memory."""
    folder = Path(tempfile.mkdtemp(prefix="fedsynth-scale-"))
    data, schema = write_data(folder, owners, seed)
    out = folder / "run"
    cmd = [str(Path(sys.executable).with_name("fedsynth")), "simulate", "--dataset", "csv",
           "--data", str(data), "--schema", str(schema), "--num-clients", str(owners),
           "--rounds", str(rounds), "--fraction", str(fraction), "--partition", "iid",
           "--holdout", str(HOLDOUT), "--seed", str(seed), "--synthetic-samples", "1000",
           "--out", str(out)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(root))
            except psutil.Error:
                return
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.monotonic() - start
    done.set()
    sampler.join()
    (folder / "simulate.log").write_text(log)
    trained = sum(1 for line in (out / "ledger.jsonl").read_text().splitlines()
                  if '"verdict":"accepted"' in line.replace(" ", ""))
    result = {"owners": owners, "rounds": rounds, "fraction": fraction, "exit": proc.returncode,
              "wall_s": round(wall, 1), "peak_gib": round(peak / 2**30, 2),
              "owner_updates": trained, "log": str(folder / "simulate.log")}
    if not keep and proc.returncode == 0:
        shutil.rmtree(folder)
    return result


def main() -> None:
    """Parse the flags, run once, print one Markdown table row."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the data and the run")
    args = parser.parse_args()
    r = run(args.owners, args.rounds, args.fraction, args.seed, args.keep)
    print("| owners | rounds | fraction | accepted updates | wall | peak memory (tree RSS) "
          "| exit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {r['owners']} | {r['rounds']} | {r['fraction']} | {r['owner_updates']} | "
          f"{r['wall_s']} s | {r['peak_gib']} GiB | {r['exit']} |")
    if r["exit"] != 0:
        print(f"the run failed: see {r['log']}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
