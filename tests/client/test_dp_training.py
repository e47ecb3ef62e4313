"""Invariants P1 (clip and noise every real gradient) and P2 (Poisson sampling)."""

import contextlib

import numpy as np
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


def test_per_sample_gradients_are_clipped_to_the_norm():
    """With no noise, one step's update equals the mean of clipped per-record gradients."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    data = _data(n=8)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = DataLoader(TensorDataset(torch.from_numpy(data.x), torch.from_numpy(data.y)),
                        batch_size=8)
    private, opt, _ = PrivacyEngine(accountant="rdp").make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=0.0,
        max_grad_norm=0.01, poisson_sampling=False)
    xb, yb = torch.from_numpy(data.x), torch.from_numpy(data.y)
    private(xb, yb).mean().backward()
    norms = torch.stack([p.grad_sample.flatten(1).norm(dim=1) for p in private.parameters()])
    per_record = norms.pow(2).sum(0).sqrt()
    assert (per_record > 0.01).all(), "raw per-record gradients exceed the clip norm"
    opt.pre_step()
    total = torch.cat([p.grad.flatten() for p in private.parameters()]).norm()
    assert total <= 0.01 + 1e-6


def test_a_non_finite_per_sample_gradient_is_zeroed_before_clipping():
    """One record's inf must not turn the noisy sum into NaN (a detector for that record)."""
    from opacus import GradSampleModule

    model = _model()
    private = GradSampleModule(model, loss_reduction="mean")
    opt = dp_training.FiniteDPOptimizer(torch.optim.SGD(private.parameters(), lr=1.0),
                                        noise_multiplier=0.0, max_grad_norm=1.0,
                                        expected_batch_size=1)
    data = _data(n=4)
    private(torch.from_numpy(data.x), torch.from_numpy(data.y)).mean().backward()
    first = next(private.parameters())
    first.grad_sample[0].fill_(float("inf"))
    opt.pre_step()
    total = torch.cat([p.summed_grad.flatten() for p in private.parameters()])
    assert torch.isfinite(total).all() and total.norm() <= 4.0 + 1e-5
