"""Invariant P4 and the accountant: budgets are never exceeded, epsilons are right."""

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from privacy.accountant import calibrate_noise, epsilon_of, steps_that_fit


def test_rdp_epsilon_matches_opacus_accountant():
    history = [(1.1, 0.5, 40), (1.3, 0.25, 7)]
    acc = RDPAccountant()
    acc.history = list(history)
    assert epsilon_of(history, accountant="rdp", delta=1e-5) == pytest.approx(
        acc.get_epsilon(1e-5), rel=1e-12
    )


def test_prv_epsilon_matches_opacus_accountant():
    history = [(1.1, 0.5, 10)]
    acc = PRVAccountant()
    acc.history = list(history)
    assert epsilon_of(history, accountant="prv", delta=1e-5) == pytest.approx(
        acc.get_epsilon(1e-5), rel=1e-9
    )


def test_empty_history_costs_nothing():
    assert epsilon_of([], accountant="rdp", delta=1e-5) == 0.0


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_noise_spends_at_most_the_budget_and_close_to_it(accountant):
    sigma = calibrate_noise(epsilon=8.0, delta=1e-5, sample_rate=0.5, steps=40, accountant=accountant)
    spent = epsilon_of([(sigma, 0.5, 40)], accountant=accountant, delta=1e-5)
    assert 7.6 <= spent <= 8.0


def test_steps_that_fit_stops_exactly_at_the_budget():
    history = [(2.0, 0.5, 10)]
    budget = 8.0
    k = steps_that_fit(history, noise_multiplier=2.0, sample_rate=0.5, wanted=10_000,
                       budget=budget, delta=1e-5, accountant="rdp")
    assert 0 < k < 10_000
    assert epsilon_of([*history, (2.0, 0.5, k)], accountant="rdp", delta=1e-5) <= budget
    assert epsilon_of([*history, (2.0, 0.5, k + 1)], accountant="rdp", delta=1e-5) > budget


def test_steps_that_fit_is_zero_when_one_step_is_too_many():
    assert steps_that_fit([], noise_multiplier=0.5, sample_rate=1.0, wanted=5, budget=0.1,
                          delta=1e-5, accountant="rdp") == 0


def test_steps_that_fit_grants_everything_that_fits():
    assert steps_that_fit([], noise_multiplier=2.0, sample_rate=0.1, wanted=5, budget=8.0,
                          delta=1e-5, accountant="rdp") == 5


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibration_after_a_history_lands_on_the_lifetime_target(accountant):
    history = [(3.0, 0.5, 10)]
    sigma = calibrate_noise(epsilon=3.0, delta=1e-5, sample_rate=0.5, steps=20,
                            accountant=accountant, history=history)
    total = epsilon_of([*history, (sigma, 0.5, 20)], accountant=accountant, delta=1e-5)
    assert (2.9 if accountant == "rdp" else 2.5) <= total <= 3.0  # RDP plans PRV safely


def test_calibration_refuses_when_the_history_alone_spends_the_target():
    with pytest.raises(ValueError, match="too small"):
        calibrate_noise(epsilon=0.5, delta=1e-5, sample_rate=0.5, steps=20, accountant="rdp",
                        history=[(0.5, 1.0, 100)])
