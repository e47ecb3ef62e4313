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


def test_private_training_uses_poisson_sampling_and_dp_optimizer(monkeypatch):
    seen = {}
    original = dp_training.privatized

    @contextlib.contextmanager
    def spy(*args, **kwargs):
        with original(*args, **kwargs) as (private_model, optimizer, loader, engine):
            seen["optimizer"], seen["loader"] = optimizer, loader
            seen["sizes"] = [len(xb) for xb, _ in loader]
            yield private_model, optimizer, loader, engine

    monkeypatch.setattr(dp_training, "privatized", spy)
    train_private(_model(), _data(), steps=3, noise_multiplier=1.0, sample_rate=0.25,
                  max_grad_norm=1.0, learning_rate=1e-3, accountant="rdp", history=[])
    assert isinstance(seen["optimizer"], DPOptimizer)
    assert isinstance(seen["loader"], DPDataLoader)  # Poisson: UniformWithReplacementSampler
    assert seen["optimizer"].noise_multiplier == 1.0
    assert seen["optimizer"].max_grad_norm == 1.0
    assert len(set(seen["sizes"])) > 1, "Poisson batches vary in size"


def test_history_counts_every_step_and_continues_from_the_past():
    out = train_private(_model(), _data(), steps=7, noise_multiplier=1.2, sample_rate=0.25,
                        max_grad_norm=1.0, learning_rate=1e-3, accountant="rdp",
                        history=[(1.2, 0.25, 5)])
    assert out.steps == 7
    assert out.history == [(1.2, 0.25, 12)]


def test_noise_is_added_so_the_same_data_gives_different_updates():
    runs = []
    for seed in (1, 2):
        model = _model()
        torch.manual_seed(seed)
        train_private(model, _data(), steps=2, noise_multiplier=5.0, sample_rate=1.0,
                      max_grad_norm=1.0, learning_rate=1e-2, accountant="rdp", history=[])
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(runs[0], runs[1])


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
