"""Fidelity of released images: a Fréchet distance in a classifier's feature space.

The feature network is a scikit-learn ``MLPClassifier`` with one hidden layer of 64
ReLU units, trained on the real holdout; features are that hidden layer's
activations. The same distance between the real training records and the holdout
is reported beside it as the floor a perfect generator would reach.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.neural_network import MLPClassifier

from client.dataset import LabelledData

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
