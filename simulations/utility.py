"""Utility of released data: train on synthetic, test on real (TSTR), beside train on real (TRTR).

Two scikit-learn classifiers (logistic regression and a random forest), each scored
by accuracy and macro-F1 (and ROC AUC for binary targets). The test set is the
holdout, which never trains (P7).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from client.dataset import LabelledData

CLASSIFIERS = {
    "logistic_regression": lambda seed: LogisticRegression(max_iter=3000),
    "random_forest": lambda seed: RandomForestClassifier(
        n_estimators=200, n_jobs=1, random_state=seed
    ),
}


def _fit_score(name: str, train: LabelledData, holdout: LabelledData, seed: int) -> dict:
    clf = CLASSIFIERS[name](seed)
    clf.fit(train.x, train.y)
    pred = clf.predict(holdout.x)
    scores = {
        "accuracy": float(accuracy_score(holdout.y, pred)),
        "macro_f1": float(f1_score(holdout.y, pred, average="macro")),
    }
    if len(np.unique(holdout.y)) == 2:
        scores["auc"] = float(roc_auc_score(holdout.y, clf.predict_proba(holdout.x)[:, 1]))
    return scores


def tstr_trtr(
    synthetic: LabelledData, train: LabelledData, holdout: LabelledData, seed: int = 0
) -> dict:
    """Scores on the holdout of each classifier trained on synthetic and on real records.

    The top-level ``tstr_accuracy`` / ``trtr_accuracy`` are logistic regression's,
    the reference classifier of the project's published figures.
    """
    per = {
        name: {
            "tstr": _fit_score(name, synthetic, holdout, seed),
            "trtr": _fit_score(name, train, holdout, seed),
        }
        for name in CLASSIFIERS
    }
    lr = per["logistic_regression"]
    return {
        "classifier": "logistic_regression",
        "synthetic_samples": len(synthetic),
        "tstr_accuracy": lr["tstr"]["accuracy"],
        "tstr_macro_f1": lr["tstr"]["macro_f1"],
        "trtr_accuracy": lr["trtr"]["accuracy"],
        "trtr_macro_f1": lr["trtr"]["macro_f1"],
        "classifiers": per,
    }
