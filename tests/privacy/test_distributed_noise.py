"""Distributed noise: the public plan, an owner's share on SecAgg+'s grid, and its gate."""

import math

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_constants import Key

from client.dataset import LabelledData
from client.secure_share import check_setup, noisy_share
from genai_models import build_model, resolve
from privacy.distributed_noise import (
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    NoiseTooSmall,
    SecureSumPlan,
    plan_for,
    privacy_of_error,
    public_noise,
    survivors,
)
from privacy.experiment import ConfigError, ExperimentConfig
from privacy.linear_clipping import LinearClipper


def _model():
    torch.manual_seed(0)
    return build_model("vae", resolve("digits")[0], hidden_dim=16, latent_dim=2)


def _plan(model, sigma=2.0, survivors_=3, colluders=0, owners=5):
    return SecureSumPlan(noise_multiplier=sigma, survivors=survivors_, colluders=colluders,
                         max_grad_norm=1.0, batch_size=16,
                         dimension=sum(p.numel() for p in model.parameters()),
                         owners=owners).check()


def _data(n=40):
    from sklearn.datasets import load_digits

    d = load_digits()
    return LabelledData((d.data[:n] / 16).astype(np.float32), d.target[:n].astype(np.int64))


def test_the_sum_of_honest_shares_carries_the_accounted_noise():
    plan = _plan(_model(), sigma=2.0, survivors_=5, colluders=1, owners=6)
    # 4 honest shares of std s: std s·2 per coordinate, sensitivity C/B + Δ√d.
    assert math.isclose(plan.share_std * math.sqrt(4) / plan.sensitivity, 2.0)
    assert plan.sensitivity > 1.0 / 16  # the rounding is charged, not ignored
    assert math.log2(plan.clipping_range).is_integer()
    assert plan.grid == 2 * plan.clipping_range / QUANTIZATION_RANGE
    assert plan.ledger_fields()["survivors"] == 5 and plan.mismatches(
        {**plan.ledger_fields(), "noise_multiplier": 2.0}) == []
    assert plan.mismatches({**plan.ledger_fields(), "noise_multiplier": 1.9,
                            "colluders": 0}) == ["colluders", "noise_multiplier"]


def test_noise_the_grid_cannot_carry_is_refused():
    with pytest.raises(NoiseTooSmall, match="grid steps"):
        _plan(_model(), sigma=1e-4)


def test_a_share_lies_on_the_grid_and_flower_quantises_it_exactly():
    model, data = _model(), _data()
    plan = _plan(model)
    share = noisy_share(model, data, plan, sample_rate=0.5,
                        generator=torch.Generator().manual_seed(1))
    assert [a.shape for a in share] == [tuple(p.shape) for p in model.parameters()]
    flat = np.concatenate([a.ravel() for a in share])
    assert flat.dtype == np.float64 and np.abs(flat).max() <= plan.clipping_range
    steps = flat / plan.grid
    assert np.array_equal(steps, np.round(steps))
    # Flower's stochastic quantisation is the identity on grid values: nothing is re-rounded.
    q = quantize([flat], plan.clipping_range, QUANTIZATION_RANGE)[0]
    assert np.array_equal(q, (flat + plan.clipping_range) / plan.grid)
    assert np.array_equal(dequantize([q], plan.clipping_range, QUANTIZATION_RANGE)[0], flat)
    # The noise is the share's: spread s around the clipped signal.
    assert 0.8 < float(np.std(flat)) / plan.share_std < 1.25


def test_the_signal_is_the_clipped_sum_divided_by_the_public_batch_size():
    model, data = _model(), _data(8)
    tiny = SecureSumPlan(noise_multiplier=1e-3, survivors=2, colluders=0, max_grad_norm=1.0,
                         batch_size=16, dimension=sum(p.numel() for p in model.parameters()),
                         owners=3)
    share = np.concatenate([a.ravel() for a in noisy_share(
        model, data, tiny, sample_rate=1.0, generator=torch.Generator().manual_seed(3))])
    # The same pass by hand: the generator draws the Poisson mask, then the VAE's noise.
    gen = torch.Generator().manual_seed(3)
    torch.rand(len(data), generator=gen)
    clipper = LinearClipper(model)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    (model(x, y, generator=gen).sum() / len(x)).backward()
    sums = clipper.clipped_sums(1.0)
    clipper.remove()
    want = torch.cat([sums[p].reshape(-1) for p in model.parameters()]).double().numpy() / 16
    assert np.linalg.norm(want) > 0.05  # a real signal, not zeros
    assert np.abs(share - want).max() < 8 * tiny.share_std + tiny.grid


def test_a_gan_owner_shares_only_its_discriminator_real_term_clipped():
    """The generator never reads a record: its weights are not in the share at all."""
    torch.manual_seed(0)
    model, data = build_model("gan", resolve("digits")[0], hidden_dim=16, latent_dim=4), _data(8)
    disc = model.discriminator
    tiny = SecureSumPlan(noise_multiplier=1e-3, survivors=2, colluders=0, max_grad_norm=1.0,
                         batch_size=16, dimension=sum(p.numel() for p in disc.parameters()),
                         owners=3)
    generator_before = [p.detach().clone() for p in model.generator.parameters()]
    share = noisy_share(model, data, tiny, sample_rate=1.0,
                        generator=torch.Generator().manual_seed(3))
    assert [a.shape for a in share] == [tuple(p.shape) for p in disc.parameters()]
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    clipper = LinearClipper(disc)
    (torch.nn.functional.softplus(-disc(x, y)).sum() / len(x)).backward()  # −log D(x, y)
    sums = clipper.clipped_sums(1.0)
    clipper.remove()
    want = torch.cat([sums[p].reshape(-1) for p in disc.parameters()]).double().numpy() / 16
    flat = np.concatenate([a.ravel() for a in share])
    assert np.linalg.norm(want) > 0.01
    assert np.abs(flat - want).max() < 8 * tiny.share_std + tiny.grid
    after = list(model.generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(generator_before, after, strict=True))


def test_the_owner_refuses_secagg_settings_its_accounting_does_not_assume():
    plan = _plan(_model(), survivors_=3, colluders=1, owners=5)
    good = {Key.CLIPPING_RANGE: plan.clipping_range, Key.TARGET_RANGE: QUANTIZATION_RANGE,
            Key.MOD_RANGE: MODULUS_RANGE, Key.MAX_WEIGHT: 1.0, Key.SAMPLE_NUMBER: 4,
            Key.SHARE_NUMBER: 4, Key.THRESHOLD: 3}
    check_setup(ConfigRecord(good), plan)
    for change, why in (({Key.THRESHOLD: 2}, "threshold"), ({Key.SHARE_NUMBER: 3}, "neighbour"),
                        ({Key.CLIPPING_RANGE: 2 * plan.clipping_range}, "clipping"),
                        ({Key.TARGET_RANGE: 2**22}, "target"), ({Key.MAX_WEIGHT: 5.0}, "weight"),
                        # more participants than owners, or a threshold that is no majority
                        ({Key.SAMPLE_NUMBER: 6, Key.SHARE_NUMBER: 6}, "participants"),
                        ({Key.SAMPLE_NUMBER: 5, Key.SHARE_NUMBER: 5}, "majority"),
                        ({Key.THRESHOLD: 3.0}, "integers")):
        with pytest.raises(ValueError, match=why):
            check_setup(ConfigRecord({**good, **change}), plan)


def test_a_refusal_travels_in_the_error_reason_only_when_marked():
    assert privacy_of_error('fedsynth-privacy:{"status": "refused"}') == {"status": "refused"}
    assert privacy_of_error("fedsynth-privacy:[1]") is None
    assert privacy_of_error("some other error") is None


def test_the_proposal_is_checked_before_anyone_is_asked():
    ok = ExperimentConfig.parse({"noise": "distributed", "num-clients": 5}, "t")
    assert ok.steps_per_round == 1 and survivors(5, 0.2) == 4
    sigma, counts = public_noise(ok)
    assert sigma > 0 and counts
    assert plan_for(ok, resolve("digits")[0]).survivors == 4
    gan = ExperimentConfig.parse({"noise": "distributed", "num-clients": 5, "model": "gan",
                                  "optimizer": "adam", "learning-rate": 0.002}, "t")
    model = build_model("gan", resolve("digits")[0], hidden_dim=gan.hidden_dim,
                        latent_dim=gan.latent_dim)
    assert plan_for(gan, resolve("digits")[0]).dimension == sum(
        p.numel() for p in model.discriminator.parameters())  # the generator is not shared
    for bad, key in (({"model": "gan"}, "optimizer"), ({"fraction": 0.5}, "fraction"),
                     ({"epsilon": "inf"}, "epsilon"), ({"colluders": 4}, "colluders"),
                     ({"num-clients": 300}, "num-clients"),
                     ({"num-clients": 2, "dropout-margin": 0.5}, "dropout-margin"),
                     ({"num-clients": 10, "dropout-margin": 0.5}, "dropout-margin"),
                     ({"num-clients": 10, "colluders": 6}, "colluders"),
                     ({"aggregation": "median", "server-momentum": 0.0}, "aggregation")):
        with pytest.raises(ConfigError, match=key):
            ExperimentConfig.parse({"noise": "distributed", "num-clients": 5, **bad}, "t")
