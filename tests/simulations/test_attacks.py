"""The membership attacks: known statistics, and teeth against an overfit model."""

import numpy as np
import pytest
import torch

from client.dataset import LabelledData, train_holdout
from genai_models.cvae import ConditionalVAE
from simulations.attacks import (
    attack_metrics,
    clopper_pearson,
    dcr_attack,
    elbo_attack,
    empirical_epsilon,
)


def test_clopper_pearson_matches_published_values():
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.30850), abs=1e-4)
    lo, hi = clopper_pearson(5, 10)
    assert (lo, hi) == pytest.approx((0.18709, 0.81291), abs=1e-4)


def test_empirical_epsilon_of_a_perfect_and_a_useless_attack():
    perfect = empirical_epsilon(np.ones(1000), np.zeros(1000), delta=1e-5)
    lo, _ = clopper_pearson(1000, 1000)
    _, hi = clopper_pearson(0, 1000)
    assert perfect == pytest.approx(np.log((lo - 1e-5) / hi), rel=1e-9)
    rng = np.random.default_rng(0)
    useless = empirical_epsilon(rng.normal(size=500), rng.normal(size=500), delta=1e-5)
    assert useless < 0.5


def test_attack_metrics_report_auc_and_low_fpr_rates():
    rng = np.random.default_rng(1)
    m = attack_metrics(rng.normal(2, 1, 400), rng.normal(0, 1, 400), delta=1e-5)
    assert 0.9 < m["auc"] < 0.99
    assert 0 < m["tpr_at_fpr_0.1pct"] <= m["tpr_at_fpr_1pct"] < 1


def test_attacks_have_teeth_against_an_overfit_model():
    """Trained without DP on 40 records until it memorises them, the model leaks."""
    train, holdout = train_holdout("digits", 0.3, 0)
    members = LabelledData(train.x[:40], train.y[:40])
    nonmembers = LabelledData(holdout.x[:40], holdout.y[:40])
    torch.manual_seed(0)
    model = ConditionalVAE(64, 10, hidden_dim=256, latent_dim=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(members.x), torch.from_numpy(members.y)
    for _ in range(1500):
        opt.zero_grad()
        model(x, y).mean().backward()
        opt.step()
    elbo = elbo_attack(model, members, nonmembers, delta=1e-5, seed=0)
    assert elbo["auc"] > 0.8
    assert elbo["empirical_epsilon"] > 0.5
    with torch.no_grad():
        synth, _ = model.sample(400, torch.from_numpy(np.resize(members.y, 400)))
    dcr = dcr_attack(synth.numpy(), members.x, nonmembers.x, delta=1e-5, seed=0)
    assert dcr["auc"] > 0.6
