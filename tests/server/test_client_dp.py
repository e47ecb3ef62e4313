"""Owner-level DP: a fixed denominator, noise from the clip used, accounting checked by hand."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from privacy.experiment import ConfigError, ExperimentConfig
from server.client_dp import ClientDpSettings, ClientLevelGaussian


def _dp(noise=1e-9, clip=1.0, fraction=0.5, n=4, delta=1e-3):
    return ClientDpSettings(noise_multiplier=noise, clip=clip, delta=delta, fraction=fraction,
                            num_clients=n)


def _reply(values):
    content = RecordDict({"arrays": ArrayRecord({"w": torch.tensor(values)}),
                          "privacy": ConfigRecord({})})
    return SimpleNamespace(content=content)


def test_updates_are_clipped_and_summed_over_a_fixed_denominator():
    current = ArrayRecord({"w": torch.tensor([1.0, 1.0])})
    replies = [_reply([4.0, 5.0]), _reply([1.3, 1.0])]  # deltas (3, 4), norm 5; (0.3, 0)
    new = ClientLevelGaussian(_dp()).aggregate(current, replies).to_torch_state_dict()["w"]
    # (0.6, 0.8) + (0.3, 0) summed, divided by q N = 2 whoever replied.
    assert new.tolist() == pytest.approx([1.45, 1.4], abs=1e-6)
    one = ClientLevelGaussian(_dp()).aggregate(current, replies[:1]).to_torch_state_dict()["w"]
    assert one.tolist() == pytest.approx([1.3, 1.4], abs=1e-6)  # still / 2, not / 1


def test_an_update_equal_to_the_model_or_in_another_order_is_handled():
    current = ArrayRecord({"a": torch.tensor([1.0]), "b": torch.tensor([2.0, 2.0])})
    same = SimpleNamespace(content=RecordDict({"arrays": current}))
    swapped = SimpleNamespace(content=RecordDict({"arrays": ArrayRecord(
        {"b": torch.tensor([2.0, 2.0]), "a": torch.tensor([1.5])})}))
    new = ClientLevelGaussian(_dp(fraction=1.0, n=2)).aggregate(current, [same, swapped])
    assert new.to_torch_state_dict()["a"].tolist() == pytest.approx([1.25], abs=1e-6)


def test_the_noise_has_std_z_c_over_the_fixed_denominator_even_with_no_reply():
    current = ArrayRecord({"w": torch.zeros(40_000)})
    gaussian = ClientLevelGaussian(_dp(noise=1.2, clip=0.5, fraction=0.25, n=8))
    new = gaussian.aggregate(current, []).to_torch_state_dict()["w"].numpy()
    assert new.std() == pytest.approx(1.2 * 0.5 / 2.0, rel=0.02)
    assert gaussian.rounds == 1  # a release, accounted, though no owner took part


def test_noise_is_not_the_global_numpy_stream():
    current = ArrayRecord({"w": torch.zeros(100)})
    draws = []
    for _ in range(2):
        np.random.seed(0)
        draws.append(ClientLevelGaussian(_dp(noise=1.0)).aggregate(current, [])
                     .to_torch_state_dict()["w"].numpy())
    assert not np.allclose(*draws)


def _dp_accounting(z, q, rounds, delta):
    acc = rdp_privacy_accountant.RdpAccountant()
    event = dp_event.GaussianDpEvent(z) if q == 1 else \
        dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z))
    acc.compose(dp_event.SelfComposedDpEvent(event, rounds))
    return acc.get_epsilon(delta)


@pytest.mark.parametrize("z, q, rounds", [(0.9, 1.0, 20), (1.0, 0.1, 100), (2.0, 0.5, 10)])
def test_epsilon_matches_an_independent_accountant(z, q, rounds):
    gaussian = ClientLevelGaussian(_dp(noise=z, fraction=q, n=10))
    gaussian.rounds = rounds
    assert gaussian.epsilon == pytest.approx(_dp_accounting(z, q, rounds, 1e-3), rel=0.01)


def test_the_gaussian_mechanism_by_hand():
    """No sampling: RDP of order a is a k / (2 z^2); epsilon <= min_a RDP + log(1/delta)/(a-1)."""
    z, k, delta = 0.9, 20, 1e-3
    by_hand = min(a * k / (2 * z * z) + math.log(1 / delta) / (a - 1)
                  for a in np.linspace(1.01, 64, 20_000))
    gaussian = ClientLevelGaussian(_dp(noise=z, fraction=1.0, n=10, delta=delta))
    gaussian.rounds = k
    # Opacus converts RDP to (eps, delta) a little more tightly than the classic bound.
    assert 0.85 * by_hand <= gaussian.epsilon <= by_hand
    assert gaussian.ledger_event(20, 1)["epsilon"] == gaussian.epsilon


def test_sampling_owners_amplifies():
    full, sampled = (ClientLevelGaussian(_dp(noise=1.0, fraction=q, n=100)) for q in (1.0, 0.1))
    full.rounds = sampled.rounds = 20
    assert sampled.epsilon < full.epsilon / 3


@pytest.mark.parametrize("change, message", [
    ({"client-dp": "fixed", "server-momentum": 0.5}, "server-momentum=0.5 is not allowed"),
    ({"client-dp": "fixed", "server-momentum": 0.0, "server-learning-rate": 2.0},
     "server-learning-rate=2.0 is not allowed"),
    ({"client-dp": "adaptive", "server-momentum": 0.0}, "expected one of none, fixed"),
])
def test_momentum_and_adaptive_clipping_are_refused_wherever_the_config_is_read(change, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.parse(change, "run_config")
