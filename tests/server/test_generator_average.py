"""The GAN's released generator averages the rounds' generators, resumable from a checkpoint."""

import pytest
import torch

from privacy.experiment import ConfigError, ExperimentConfig
from server.generator_average import GeneratorAverage, ema_decay


def test_the_decay_gives_the_window_as_a_share_of_the_rounds():
    assert ema_decay(1 / 3, 300) == pytest.approx(0.99)
    assert ema_decay(0.33, 20) == pytest.approx(1 - 1 / 6.6)
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


def _value(average):
    weights = average.weights()
    assert set(weights) == {"weight", "bias"}
    assert torch.allclose(weights["bias"], -weights["weight"][0, :1])
    return float(weights["weight"][0, 0])


def test_the_mean_of_the_rounds_until_the_window_then_exponential():
    initial, *rounds = _nets([100.0, 1.0, 3.0, 8.0, 16.0])
    average = GeneratorAverage(initial, window=0.5, rounds=4)  # decay 1/2: a window of 2
    assert average.weights() is None and "initial generator" in average.describe()
    for r, net in enumerate(rounds[:2], start=1):
        average.update(net, r)
    assert _value(average) == pytest.approx(2.0)  # (1 + 3) / 2; the initial 100 never in it
    average.update(rounds[2], 3)
    assert _value(average) == pytest.approx(5.0)  # then 2 + (8 - 2) / 2
    average.update(rounds[3], 4)
    assert _value(average) == pytest.approx(10.5)
    assert average.models == 4
    assert "rounds 1-4" in average.describe() and "decay 0.5" in average.describe()
    assert torch.equal(rounds[3].weight, torch.full((1, 2), 16.0))  # the models are left alone


def test_a_run_stopped_early_releases_the_mean_of_its_rounds():
    initial, *rounds = _nets([100.0, 1.0, 3.0, 8.0])
    average = GeneratorAverage(initial, window=1 / 3, rounds=300)  # decay 0.99
    for r, net in enumerate(rounds, start=1):
        average.update(net, r)
    assert _value(average) == pytest.approx(4.0)


def test_without_a_window_the_last_generator_is_released():
    initial, *rounds = _nets([100.0, 1.0, 3.0])
    average = GeneratorAverage(initial, window=0.0, rounds=300)
    for r, net in enumerate(rounds, start=1):
        average.update(net, r)
    assert _value(average) == 3.0 and "round 2 (the last; no averaging)" in average.describe()


def test_a_resumed_average_goes_on_as_if_never_stopped():
    initial, *rounds = _nets([100.0, 1.0, 3.0, 8.0, 16.0])
    whole = GeneratorAverage(initial, window=0.5, rounds=4)
    for r, net in enumerate(rounds, start=1):
        whole.update(net, r)
    before = GeneratorAverage(initial, window=0.5, rounds=4)
    for r, net in enumerate(rounds[:2], start=1):
        before.update(net, r)
    resumed = GeneratorAverage(_nets([0.0])[0], window=0.5, rounds=4)
    resumed.load_state_dict(before.state_dict())
    for r, net in enumerate(rounds[2:], start=3):
        resumed.update(net, r)
    assert _value(resumed) == _value(whole) and resumed.describe() == whole.describe()


@pytest.mark.parametrize("value", [-0.1, 1.5, float("inf")])
def test_a_window_outside_the_run_is_refused(value):
    with pytest.raises(ConfigError, match="generator-average=.* is not allowed; expected a share"):
        ExperimentConfig.parse({"generator-average": value}, "run_config")


def test_runs_recorded_before_the_key_keep_their_proposal_digest():
    """An older config.toml has no generator-average: its signed digest must still match."""
    import hashlib
    import json

    from privacy.experiment import proposal_digest

    config = ExperimentConfig.parse({"model": "gan", "rounds": 7}, "run_config")
    older = {k: v for k, v in config.to_run_config().items() if k != "generator-average"}
    signed = hashlib.sha256(json.dumps(older, sort_keys=True, separators=(",", ":"))
                            .encode("utf-8")).hexdigest()
    assert proposal_digest(config) == signed
    changed = ExperimentConfig.parse({"model": "gan", "rounds": 7, "generator-average": 0.5}, "c")
    assert proposal_digest(changed) != signed
