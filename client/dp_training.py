"""Local training of one round: Opacus DP-SGD with Poisson sampling, or the non-private baseline.

Every gradient computed from a real record is clipped per sample and noised
(invariant P1), and batches are drawn by Poisson sampling as the accountant
assumes (P2). The accountant's history is restored before training and returned
after it, so the caller can persist it across rounds (P3).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privacy.accountant import History
from client.dataset import LabelledData


@dataclass(frozen=True)
class RoundOutcome:
    """What one round of local training did."""

    steps: int
    mean_loss: float
    history: History


OPTIMIZERS = ("sgd", "adam")


def _optimizer(name: str, model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Build the local optimizer; plain SGD is the DP default.

    Under DP a fresh Adam's first steps are sign steps, which move every
    noise-dominated weight by the full learning rate.
    """
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def _tensors(data: LabelledData) -> TensorDataset:
    return TensorDataset(torch.from_numpy(data.x), torch.from_numpy(data.y))


@contextlib.contextmanager
def privatized(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: LabelledData,
    *,
    noise_multiplier: float,
    sample_rate: float,
    max_grad_norm: float,
    accountant: str,
    history: History,
):
    """Yield ``(private_module, dp_optimizer, poisson_loader, engine)`` for ``module``.

    The accountant resumes from ``history``; on exit the hooks are removed (the
    module is plain again for averaging) and the recorded (noise, rate) is checked
    against the plan, so the ledger can never describe other steps than were taken.
    """
    batches = round(1.0 / sample_rate)
    if abs(1.0 / batches - sample_rate) > 1e-12:
        raise ValueError(f"sample_rate={sample_rate} must be 1/k for an integer k")
    loader = DataLoader(_tensors(data), batch_size=math.ceil(len(data) / batches))
    # Opacus warns that secure_mode is off (a documented choice) and torch that the
    # inputs need no gradient (true: only the weights' per-sample gradients matter).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        engine = PrivacyEngine(accountant=accountant)
        engine.accountant.history = list(history)
        private, optimizer, loader = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
        )
        yield private, optimizer, loader, engine
    private.remove_hooks()
    recorded = engine.accountant.history[-1] if engine.accountant.history else None
    if recorded is not None and recorded[:2] != (noise_multiplier, sample_rate):
        raise RuntimeError(f"accountant recorded {recorded[:2]}, not the planned "
                           f"({noise_multiplier}, {sample_rate})")


def repeat_steps(loader, steps: int, step: Callable[[torch.Tensor, torch.Tensor], float]):
    """Take exactly ``steps`` steps over ``loader``, starting it again as often as needed.

    Returns ``(steps taken, summed loss)``. Every batch a Poisson loader yields is a
    step, an empty one included: the accountant counts it, so it must happen.
    """
    done, total = 0, 0.0
    while done < steps:
        for xb, yb in loader:
            if done >= steps:
                break
            total += step(xb, yb)
            done += 1
    return done, total


def run_epochs(loader, epochs: int, step: Callable[[torch.Tensor, torch.Tensor], float]):
    """Take one step per batch for ``epochs`` passes; return ``(steps, summed loss)``."""
    done, total = 0, 0.0
    for _ in range(epochs):
        for xb, yb in loader:
            total += step(xb, yb)
            done += 1
    return done, total


def train_private(
    model: nn.Module,
    data: LabelledData,
    *,
    steps: int,
    noise_multiplier: float,
    sample_rate: float,
    max_grad_norm: float,
    learning_rate: float,
    accountant: str,
    history: History,
    optimizer: str = "sgd",
) -> RoundOutcome:
    """Run exactly ``steps`` DP-SGD steps on ``model`` (in place) and return the new history."""
    with privatized(
        model, _optimizer(optimizer, model, learning_rate), data,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate,
        max_grad_norm=max_grad_norm, accountant=accountant, history=history,
    ) as (private_model, dp_optimizer, loader, engine):
        private_model.train()

        def step(xb: torch.Tensor, yb: torch.Tensor) -> float:
            dp_optimizer.zero_grad(set_to_none=True)
            # An empty Poisson batch still takes a (noise-only) step, as accounted.
            loss = private_model(xb, yb).sum() / max(len(xb), 1)
            loss.backward()
            dp_optimizer.step()
            return float(loss.detach())

        done, total = repeat_steps(loader, steps, step)
    return RoundOutcome(done, total / max(done, 1), list(engine.accountant.history))


def train_nonprivate(
    model: nn.Module,
    data: LabelledData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_norm: float = 1.0,
    optimizer: str = "sgd",
) -> RoundOutcome:
    """Plain minibatch training: the no-DP baseline every privacy figure is read against."""
    loader = DataLoader(_tensors(data), batch_size=batch_size, shuffle=True)
    opt = _optimizer(optimizer, model, learning_rate)
    model.train()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(xb, yb).mean()
        loss.backward()
        # Batch-level clipping at the DP recipe's norm keeps the recipe's learning
        # rate stable without noise; it is a training aid, not a privacy measure.
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        return float(loss.detach())

    done, total = run_epochs(loader, epochs, step)
    return RoundOutcome(done, total / max(done, 1), [])
