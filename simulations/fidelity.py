"""Fidelity of released images: a Fréchet distance in a classifier's feature space.

The feature network is a scikit-learn ``MLPClassifier`` with one hidden layer of 64
ReLU units, trained on the real holdout; features are that hidden layer's
activations. The same distance between the real training records and the holdout
is reported beside it as the floor a perfect generator would reach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.stats import ks_2samp
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier

from client.dataset import LabelledData
from genai_models.schema import Schema

FEATURE_NETWORK = "sklearn MLPClassifier(64 ReLU) trained on the holdout; hidden layer"


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    # A small ridge keeps the product positive definite when ReLU units are dead.
    ridge = 1e-6 * np.eye(a.shape[1])
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def image_fidelity(
    synthetic: LabelledData, train: LabelledData, holdout: LabelledData, seed: int = 0
) -> dict:
    """Fréchet distances (overall and per class) of synthetic and of real training records."""
    net = MLPClassifier(hidden_layer_sizes=(64,), max_iter=800, random_state=seed)
    net.fit(holdout.x, holdout.y)

    def features(x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ net.coefs_[0] + net.intercepts_[0], 0.0)

    f_syn, f_train, f_hold = features(synthetic.x), features(train.x), features(holdout.x)
    per_class = {}
    for label in np.unique(holdout.y):
        s, h = f_syn[synthetic.y == label], f_hold[holdout.y == label]
        if len(s) > 2 and len(h) > 2:
            per_class[str(int(label))] = frechet_distance(s, h)
    return {
        "frechet_distance": frechet_distance(f_syn, f_hold),
        "frechet_distance_real_train": frechet_distance(f_train, f_hold),
        "frechet_distance_per_class": per_class,
        "feature_network": FEATURE_NETWORK,
    }


def table_fidelity(
    synthetic: pd.DataFrame, real: pd.DataFrame, schema: Schema,
    synthetic_x: np.ndarray, real_x: np.ndarray, seed: int = 0,
) -> dict:
    """Per-column marginal distances, correlation difference and a detection AUC.

    Categoricals and booleans: total variation distance; numbers: Kolmogorov-Smirnov
    statistic. Correlations are Pearson's over the numeric columns. Detection: a
    random forest telling real holdout rows from synthetic ones (5-fold ROC AUC;
    0.5 is ideal).
    """
    columns = {}
    for col in schema.columns:
        a, b = synthetic[col.name], real[col.name]
        if col.numeric:
            stat = ks_2samp(a.dropna().astype(float), b.dropna().astype(float)).statistic
            columns[col.name] = {"metric": "ks", "distance": float(stat)}
        else:
            pa = a.astype("string").value_counts(normalize=True, dropna=False)
            pb = b.astype("string").value_counts(normalize=True, dropna=False)
            keys = pa.index.union(pb.index)
            tv = 0.5 * float(np.abs(pa.reindex(keys, fill_value=0)
                                    - pb.reindex(keys, fill_value=0)).sum())
            columns[col.name] = {"metric": "tv", "distance": tv}
    numeric = [c.name for c in schema.columns if c.numeric]
    corr_diff = None
    if len(numeric) >= 2:
        ca = synthetic[numeric].astype(float).corr().fillna(0).to_numpy()
        cb = real[numeric].astype(float).corr().fillna(0).to_numpy()
        corr_diff = float(np.abs(ca - cb)[np.triu_indices(len(numeric), 1)].mean())
    k = min(len(synthetic_x), len(real_x))
    rng = np.random.default_rng(seed)
    xs = synthetic_x[rng.choice(len(synthetic_x), k, replace=False)]
    xr = real_x[rng.choice(len(real_x), k, replace=False)]
    detector = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    auc = cross_val_score(detector, np.r_[xs, xr], np.r_[np.ones(k), np.zeros(k)],
                          cv=5, scoring="roc_auc").mean()
    return {
        "columns": columns,
        "mean_marginal_distance": float(np.mean([c["distance"] for c in columns.values()])),
        "correlation_difference": corr_diff,
        "detection_auc": float(auc),
        "reference": "the holdout",
    }
