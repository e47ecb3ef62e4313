"""Score synthetic tables the same way for every system (run in .venv-peers).

For each synthetic CSV: TSTR (logistic regression on one-hot categoricals and standardised
numbers, trained on the synthetic rows, tested on the real holdout: accuracy and ROC AUC)
and SDMetrics' QualityReport (column shapes and pair trends) against the holdout. TRTR is
the same classifier trained on the real training rows.

    python score.py --real titanic.csv --schema titanic.toml --seed 0 \
        --out scores.csv NAME=synthetic.csv ...
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from tables_common import TableSchema  # noqa: E402

from simulations.quality_report import sdmetrics_quality  # noqa: E402


def _classifier(schema: TableSchema):
    cats = list(schema.categorical)
    encode = ColumnTransformer([
        ("cat", OneHotEncoder(categories=[list(schema.categorical[c]) for c in cats],
                              handle_unknown="ignore"), cats),
        ("num", StandardScaler(), list(schema.numeric)),
    ])
    return make_pipeline(encode, LogisticRegression(max_iter=2000))


def tstr(schema: TableSchema, train: pd.DataFrame, holdout: pd.DataFrame) -> dict:
    """Accuracy and ROC AUC on the holdout of a classifier trained on ``train``."""
    y_train, y_test = schema.labels(train), schema.labels(holdout)
    if len(np.unique(y_train)) < 2:  # a release with one class cannot train a classifier
        majority = np.bincount(y_test).argmax()
        return {"accuracy": float(np.mean(y_test == majority)), "auc": 0.5}
    model = _classifier(schema).fit(train, y_train)
    proba = model.predict_proba(holdout)
    if len(schema.classes) == 2:
        auc = roc_auc_score(y_test, proba[:, 1])
    else:
        auc = roc_auc_score(y_test, proba, multi_class="ovr", labels=model.classes_)
    return {"accuracy": float(accuracy_score(y_test, model.predict(holdout))), "auc": float(auc)}


def quality(schema: TableSchema, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """SDMetrics' QualityReport scores, computed as fedsynth's report computes them."""
    q = sdmetrics_quality(synthetic, real, schema.schema)
    return {"quality": q["quality"], "shapes": q["column_shapes"],
            "trends": q["column_pair_trends"]}


def main() -> None:
    """Score every NAME=FILE.csv given, and the real training rows, for one seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True, help="CSV of scores (appended)")
    parser.add_argument("--label", default="", help="prefix for the rows' names")
    parser.add_argument("synthetic", nargs="*", help="NAME=FILE.csv")
    args = parser.parse_args()
    schema = TableSchema.load(args.schema)
    train, holdout = schema.split(schema.read(args.real), args.seed)
    rows = [{"system": "real training rows (TRTR)", **tstr(schema, train, holdout),
             **quality(schema, holdout, train)}]
    for item in args.synthetic:
        name, path = item.split("=", 1)
        synthetic = schema.read(path)
        rows.append({"system": name, **tstr(schema, synthetic, holdout),
                     **quality(schema, holdout, synthetic)})
    out = Path(args.out)
    new = not out.exists()
    with out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, ["table", "seed", "system", "accuracy", "auc",
                                         "quality", "shapes", "trends"])
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({"table": args.label, "seed": args.seed,
                             **{k: (f"{v:.3f}" if isinstance(v, float) else v)
                                for k, v in row.items()}})
            print(f"{args.label} seed {args.seed} {row['system']}: acc {row['accuracy']:.3f} "
                  f"auc {row['auc']:.3f} quality {row['quality']:.3f}")


if __name__ == "__main__":
    main()
