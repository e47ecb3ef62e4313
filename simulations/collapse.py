"""Saying out loud when a release failed: collapsed rows, a trivial detector, a TSTR at chance.

A run that exits 0 with every synthetic row the same person must not look like a
result. Each check compares the release with the real holdout (never training
records), and each flag is one sentence a user can act on. ``fedsynth evaluate
--strict`` exits 1 when any is raised.
"""

from __future__ import annotations

import numpy as np

from client.dataset import LabelledData

DIVERSITY_FLOOR = 0.1
"""Synthetic rows whose summed per-feature variance is below this share of the real
rows' are collapsed onto a few points."""
DUPLICATE_EXCESS = 0.5
"""Flag when the share of rows repeated (to 3 decimals) exceeds the real rows' by this."""
DETECTION_CEILING = 0.95
"""A detector telling synthetic from real rows with this ROC AUC sees through the release."""
MAJORITY_MARGIN = 0.01
"""TSTR accuracy within this of always answering the majority class learned nothing."""
CHANCE_AUC = 0.55
"""A binary TSTR classifier ranking the holdout with ROC AUC at most this learned nothing.

Accuracy alone overstates it: on an imbalanced table with weak features (German credit:
majority 0.70, real rows' own accuracy 0.76) a classifier trained on a release can rank
real rows (AUC 0.71) and still answer the majority class at the 0.5 threshold; that is
flagged as no better than the majority class, not as having learned nothing."""


def _repeated_share(x: np.ndarray) -> float:
    """Share of rows that equal another row once rounded to 3 decimals."""
    if len(x) == 0:
        return 0.0
    _, inverse, counts = np.unique(np.round(x, 3), axis=0, return_inverse=True,
                                   return_counts=True)
    return float((counts[inverse.ravel()] > 1).mean())


def release_flags(synthetic: LabelledData, holdout: LabelledData, utility: dict,
                  fidelity: dict) -> dict:
    """The collapse measurements and the flags they raise (a list of sentences)."""
    real_var = float(holdout.x.var(axis=0).sum())
    diversity = float(synthetic.x.var(axis=0).sum()) / real_var if real_var > 0 else 1.0
    repeated, real_repeated = _repeated_share(synthetic.x), _repeated_share(holdout.x)
    majority = float(np.bincount(holdout.y.astype(np.int64)).max() / len(holdout.y))
    tstr = utility["tstr_accuracy"]
    tstr_auc = utility.get("classifiers", {}).get("logistic_regression", {}) \
        .get("tstr", {}).get("auc")
    flags = []
    if diversity < DIVERSITY_FLOOR:
        flags.append(f"collapse: the synthetic rows vary {diversity:.1%} as much as real ones "
                     f"(below {DIVERSITY_FLOOR:.0%}); the model emits a few points")
    if repeated - real_repeated > DUPLICATE_EXCESS:
        flags.append(f"collapse: {repeated:.0%} of synthetic rows repeat another "
                     f"(real rows: {real_repeated:.0%})")
    auc = fidelity.get("detection_auc")
    if auc is not None and auc >= DETECTION_CEILING:
        flags.append(f"detectable: a classifier tells synthetic from real rows with ROC AUC "
                     f"{auc:.3f} (≥ {DETECTION_CEILING}); the release does not look like the data")
    at_majority = tstr <= majority + MAJORITY_MARGIN
    if tstr_auc is not None and tstr_auc <= CHANCE_AUC:
        flags.append(f"useless for prediction: TSTR ROC AUC {tstr_auc:.3f} (≤ {CHANCE_AUC}); "
                     f"a classifier trained on the release ranks real rows no better than chance")
    elif at_majority and tstr_auc is not None:
        flags.append(f"no better than the majority class: a classifier trained on the "
                     f"release is right on {tstr:.3f} of real rows (always answering the "
                     f"majority class: {majority:.3f}), though it ranks them with ROC AUC "
                     f"{tstr_auc:.3f}")
    elif at_majority:
        flags.append(f"useless for prediction: TSTR accuracy {tstr:.3f} is the majority-class "
                     f"rate {majority:.3f}; a classifier learned nothing from the release")
    return {"diversity_ratio": diversity, "repeated_share": repeated,
            "real_repeated_share": real_repeated, "majority_rate": majority, "flags": flags}
