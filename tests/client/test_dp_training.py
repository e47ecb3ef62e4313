"""Invariants P1 (clip and noise every real gradient) and P2 (Poisson sampling)."""

import contextlib

import numpy as np
import pytest
import torch
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer

import client.dp_training as dp_training
from client.dataset import LabelledData
from client.dp_training import train_private
from genai_models import DIGITS, build_model


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return LabelledData(rng.random((n, 64), dtype=np.float32), rng.integers(0, 10, n))


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("vae", DIGITS, hidden_dim=16, latent_dim=2)


def _train(model, data=None, **kw):
    args = {"steps": 3, "noise_multiplier": 1.0, "sample_rate": 0.25, "max_grad_norm": 1.0,
            "normaliser": 10, "learning_rate": 1e-2, "accountant": "rdp"} | kw
    return train_private(model, data if data is not None else _data(), **args)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_private_training_uses_poisson_sampling_at_the_public_rate(monkeypatch):
    seen = {}
    original = dp_training.privatized

    @contextlib.contextmanager
    def spy(*args, **kwargs):
        with original(*args, **kwargs) as (private_model, optimizer, loader):
            seen["optimizer"], seen["loader"] = optimizer, loader
            seen["sizes"] = [len(xb) for xb, _ in loader]
            yield private_model, optimizer, loader

    monkeypatch.setattr(dp_training, "privatized", spy)
    # 40 records at q = 0.3: Opacus's make_private would sample at 1/len(loader).
    _train(_model(), sample_rate=0.3, steps=3)
    assert isinstance(seen["optimizer"], DPOptimizer)
    assert isinstance(seen["loader"], DPDataLoader)  # Poisson: UniformWithReplacementSampler
    assert seen["loader"].sample_rate == 0.3
    assert seen["optimizer"].noise_multiplier == 1.0
    assert seen["optimizer"].max_grad_norm == 1.0
    assert seen["optimizer"].expected_batch_size == 10  # the public normaliser, not q * n
    assert seen["optimizer"].secure_mode, "Opacus's floating-point defence is on"
    assert len(set(seen["sizes"])) > 1, "Poisson batches vary in size"


def test_every_step_is_taken_and_checked_against_a_watching_accountant():
    assert _train(_model(), steps=7, noise_multiplier=1.2).steps == 7


def test_noise_is_unpredictable_from_every_seed_the_configuration_holds():
    """P9: the same model, data and torch seed still give different private updates."""
    runs = []
    for _ in range(2):
        model = _model()
        torch.manual_seed(0)
        np.random.seed(0)
        _train(model, steps=2, noise_multiplier=5.0, sample_rate=1.0)
        runs.append(_flat(model))
    assert not torch.allclose(runs[0], runs[1])


def test_noise_and_sampling_come_only_from_the_private_generator():
    """With the same generator state the update repeats: nothing else is random in DP."""
    runs = []
    for _ in range(2):
        model = _model()
        torch.manual_seed(0)
        _train(model, steps=3, noise_multiplier=5.0, sample_rate=0.5,
               generator=torch.Generator().manual_seed(123))
        runs.append(_flat(model))
    assert torch.equal(runs[0], runs[1])


def test_the_vaes_own_noise_is_private_too():
    """No draw from torch's global RNG: its state (public, seeded) is the same after training."""
    model = _model()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    _train(model, steps=3, sample_rate=0.5)
    assert torch.equal(torch.get_rng_state(), before)


def test_entropy_generators_differ():
    a, b = dp_training.entropy_generator(), dp_training.entropy_generator()
    assert a.initial_seed() != b.initial_seed()


def _opacus_clipped_sum(module, loss_of, clip):
    """Opacus's own hooks and flat clipping: the reference the clipper must equal."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    private = GradSampleModule(module, batch_first=True, loss_reduction="mean")
    opt = DPOptimizer(torch.optim.SGD(module.parameters(), lr=1.0), noise_multiplier=0.0,
                      max_grad_norm=clip, expected_batch_size=1)
    loss_of(private).backward()
    opt.clip_and_accumulate()
    sums = [p.summed_grad.clone() for p in module.parameters()]
    private._close()
    for p in module.parameters():
        p.grad = None
    return sums


@pytest.mark.parametrize("clip", [1e-3, 1.0, 1e3])
def test_the_clipped_sum_is_opacus_flat_clipping_to_the_letter(clip):
    """Every record's gradient clipped over all parameters at C, then summed: as Opacus does."""
    from privacy.linear_clipping import LinearClipper

    model, data = _model(), _data(n=12)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)

    def loss_of(module):
        return module(x, y, generator=torch.Generator().manual_seed(3)).sum() / len(x)

    reference = _opacus_clipped_sum(model, loss_of, clip)
    clipper = LinearClipper(model)
    loss_of(model).backward()
    sums = clipper.clipped_sums(clip)
    clipper.remove()
    for p, want in zip(model.parameters(), reference, strict=True):
        assert torch.allclose(sums[p], want, rtol=1e-4, atol=1e-6 * max(1.0, clip))


def test_per_sample_gradients_are_clipped_to_the_norm():
    """With no noise, one step's update is the mean of clipped per-record gradients."""
    data, model = _data(n=8), _model()
    before = [p.detach().clone() for p in model.parameters()]
    with dp_training.privatized(model, torch.optim.SGD(model.parameters(), lr=1.0), data,
                                noise_multiplier=1e-9, sample_rate=1.0, max_grad_norm=0.01,
                                normaliser=8, accountant="rdp", steps=1) as (m, opt, loader):
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            (m(xb, yb).sum() / len(xb)).backward()
            opt.step()
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before,
                                                                   strict=True)]).norm()
    assert 0 < moved <= 0.01 + 1e-6


def test_a_record_with_a_non_finite_gradient_is_dropped_not_spread():
    """One record's inf must not turn the noisy sum into NaN (a detector for that record)."""
    from privacy.linear_clipping import LinearClipper

    model, data = _model(), _data(n=4)
    clipper = LinearClipper(model)
    (model(torch.from_numpy(data.x), torch.from_numpy(data.y)).sum() / 4).backward()
    clipper._inputs[clipper.layers[0]][0, 0] = float("inf")  # record 0's activation overflowed
    sums = clipper.clipped_sums(1.0)
    total = torch.cat([s.flatten() for s in sums.values()])
    assert torch.isfinite(total).all() and total.norm() <= 3.0 + 1e-5  # 3 records left
    clipper.remove()


def test_weights_a_coordinator_crafted_cannot_let_a_record_escape_its_clipping():
    """Tiny output gradients times huge inputs: in float32 the norm underflowed to zero."""
    import math

    from client.gan_training import discriminator_loss
    from genai_models import DIGITS, build_model
    from privacy.linear_clipping import LinearClipper

    torch.manual_seed(0)
    hidden, batch = 256, 1024
    disc = build_model("gan", DIGITS, hidden_dim=hidden, latent_dim=8).discriminator
    with torch.no_grad():  # a global model a coordinator could send
        disc.features[0].weight.normal_(0, 0.1)
        disc.features[0].bias.fill_(0.95 * math.sqrt(3.4e38 / hidden))
        disc.features[2].weight.normal_(0, 1e-21)
        disc.features[2].bias.zero_()
        disc.realness.weight.fill_(4e-23 * batch)
        disc.realness.bias.zero_()
        disc.embedding.weight.zero_()
    x, y = torch.rand(batch, 64), torch.randint(0, 10, (batch,))
    target = torch.cat([torch.ones(batch // 2), torch.zeros(batch // 2)])

    def clipped_sum(first):
        clipper = LinearClipper(disc)
        discriminator_loss(disc, x[first:], y[first:], target[first:]).backward()
        sums = clipper.clipped_sums(1.0)
        clipper.remove()
        disc.zero_grad(set_to_none=True)
        return torch.cat([sums[p].double().flatten() for p in disc.parameters()])

    assert (clipped_sum(0) - clipped_sum(1)).norm().item() <= 1.0 + 1e-4


def test_a_layer_that_mixes_records_is_refused_and_hooks_never_stay():
    from privacy.linear_clipping import LinearClipper

    with pytest.raises(ValueError, match="mix the records"):
        LinearClipper(torch.nn.Sequential(torch.nn.Linear(3, 3),
                                          torch.nn.BatchNorm1d(3, affine=False)))
    model = _model()
    empty = LabelledData(np.zeros((0, 64), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError):
        dp_training.train_private(model, empty, steps=1, noise_multiplier=1.0,
                                  sample_rate=0.5, max_grad_norm=1.0, normaliser=4,
                                  learning_rate=0.1, accountant="rdp")
    assert not any(m._forward_hooks for m in model.modules())
