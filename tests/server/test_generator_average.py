"""The GAN's released generator is an EMA of the rounds' generators, resumable from a checkpoint."""

import math

import pytest
import torch

from privacy.experiment import ConfigError, ExperimentConfig
from server.generator_average import GeneratorAverage, ema_decay


def test_the_decay_gives_the_window_as_a_share_of_the_rounds():
    assert ema_decay(1 / 3, 300) == pytest.approx(0.99)
    assert ema_decay(0.33, 20) == pytest.approx(1 - 1 / 6.6)
    # The first model's weight after the run is about e^(-1/window).
    assert ema_decay(1 / 3, 300) ** 300 == pytest.approx(math.exp(-3), rel=0.02)
    assert ema_decay(0.33, 2) == 0.0  # under one round: the last model alone
    assert ema_decay(0.0, 1000) == 0.0


def _nets(values):
    nets = []
    for v in values:
        net = torch.nn.Linear(2, 1)
        torch.nn.init.constant_(net.weight, v)
        torch.nn.init.constant_(net.bias, -v)
        nets.append(net)
    return nets


def test_the_average_weighs_each_round_by_the_decay_and_starts_at_the_first_model():
    g0, g1, g2 = _nets([1.0, 3.0, 7.0])
    average = GeneratorAverage(g0, window=1.0, rounds=2)  # decay 0.5
    for net in (g0, g1, g2):
        average.update(net)
    expected = 0.25 * 1.0 + 0.25 * 3.0 + 0.5 * 7.0
    weights = average.weights()
    assert set(weights) == {"weight", "bias"}
    assert torch.allclose(weights["weight"], torch.full((1, 2), expected))
    assert torch.allclose(weights["bias"], torch.full((1,), -expected))
    assert torch.equal(g2.weight, torch.full((1, 2), 7.0))  # the models are left alone


def test_a_resumed_average_goes_on_as_if_never_stopped():
    g0, g1, g2 = _nets([1.0, 3.0, 7.0])
    whole = GeneratorAverage(g0, window=1.0, rounds=2)
    for net in (g0, g1, g2):
        whole.update(net)
    before = GeneratorAverage(g0, window=1.0, rounds=2)
    before.update(g0)
    before.update(g1)
    resumed = GeneratorAverage(_nets([0.0])[0], window=1.0, rounds=2)
    resumed.load_state_dict(before.state_dict())
    resumed.update(g2)
    assert all(torch.equal(whole.weights()[k], resumed.weights()[k]) for k in ("weight", "bias"))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("inf")])
def test_a_window_outside_the_run_is_refused(value):
    with pytest.raises(ConfigError, match="generator-average=.* is not allowed; expected a share"):
        ExperimentConfig.parse({"generator-average": value}, "run_config")
