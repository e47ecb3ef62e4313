"""The table benchmark's summary: the median over seeds of every score, as markdown."""

from __future__ import annotations

import sys

import pandas as pd


def main(path: str) -> None:
    """Print the medians of the scores in ``path``."""
    scores = pd.read_csv(path).drop_duplicates(["table", "seed", "system"], keep="last")
    metrics = ["accuracy", "auc", "quality", "shapes", "trends"]
    grouped = scores.groupby(["table", "system"], sort=False)
    table = grouped[metrics].median().round(3)
    table["seeds"] = grouped["seed"].nunique()
    table["quality per seed"] = grouped["quality"].apply(
        lambda q: " / ".join(f"{v:.3f}" for v in q))
    table = table.reset_index()
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
