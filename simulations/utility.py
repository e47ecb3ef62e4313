"""Utility of released data: train on synthetic, test on real (TSTR), beside train on real (TRTR).

The test set is the holdout, which never trains (P7).
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from client.dataset import LabelledData


def _fit_score(x_train, y_train, holdout: LabelledData) -> dict[str, float]:
    clf = LogisticRegression(max_iter=3000)
    clf.fit(x_train, y_train)
    pred = clf.predict(holdout.x)
    return {
        "accuracy": float(accuracy_score(holdout.y, pred)),
        "macro_f1": float(f1_score(holdout.y, pred, average="macro")),
    }


def tstr_trtr(synthetic: LabelledData, train: LabelledData, holdout: LabelledData) -> dict:
    """Logistic-regression accuracy and macro-F1 on the holdout, trained on each source."""
    tstr = _fit_score(synthetic.x, synthetic.y, holdout)
    trtr = _fit_score(train.x, train.y, holdout)
    return {
        "classifier": "logistic_regression",
        "synthetic_samples": len(synthetic),
        "tstr_accuracy": tstr["accuracy"],
        "tstr_macro_f1": tstr["macro_f1"],
        "trtr_accuracy": trtr["accuracy"],
        "trtr_macro_f1": trtr["macro_f1"],
    }
