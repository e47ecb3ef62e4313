"""Local training of one round: Opacus DP-SGD with Poisson sampling, or the non-private baseline.

Every gradient computed from a real record is clipped per sample and noised
(invariant P1), and batches are drawn by Poisson sampling at the public rate the
accountant assumes (P2). The owner's history lives in its own ledger (P3), which
the caller reads before training and appends to after it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from opacus.accountants import create_accountant
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from client.dataset import LabelledData
from privacy.experiment import OPTIMIZERS
from privacy.linear_clipping import LinearClipper
from privacy.update_bound import ADAM_BETAS

# The inputs need no gradient, only the weights' per-sample ones: torch's note about
# the backward hooks says nothing a user can act on.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


@dataclass(frozen=True)
class RoundOutcome:
    """What one round of local training did: steps taken and (non-private only) the loss."""

    steps: int
    mean_loss: float


def _optimizer(name: str, model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Build the local optimizer; plain SGD is the DP default.

    Under DP a fresh Adam's first steps are sign steps, which move every
    noise-dominated weight by the full learning rate.
    """
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=ADAM_BETAS)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def _tensors(data: LabelledData) -> TensorDataset:
    return TensorDataset(torch.from_numpy(data.x), torch.from_numpy(data.y))


class LinearDPOptimizer(DPOptimizer):
    """Opacus's DPOptimizer (noise, scaling, accountant hook) fed by a :class:`LinearClipper`.

    The clipper computes each record's gradient norm and the clipped sum in the
    backward pass's shadow (see :mod:`privacy.linear_clipping`); Opacus adds the noise
    (``secure_mode``), divides by the public normaliser and tells the accountant.
    Each step is one Poisson batch: nothing accumulates between steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, clipper: LinearClipper, **kwargs):
        super().__init__(optimizer, **kwargs)
        self.clipper = clipper

    @property
    def accumulated_iterations(self) -> int:
        """One batch per step (what the accountant's sample rate assumes)."""
        return 1

    def clip_and_accumulate(self):
        """Each parameter's clipped sum, from the clipper; its saved tensors are dropped."""
        sums = self.clipper.clipped_sums(self.max_grad_norm)
        for p in self.params:
            p.summed_grad = sums[p]
        self.clipper.clear()

    def pre_step(self, closure=None) -> bool:
        """Clip, noise, scale, account: every step, an empty Poisson batch included."""
        self.clip_and_accumulate()
        self.add_noise()
        self.scale_grad()
        if self.step_hook:
            self.step_hook(self)
        self._is_last_step_skipped = False
        return True

    def zero_grad(self, set_to_none: bool = False):
        """Clear gradients and whatever the clipper saved since the last step."""
        self.clipper.clear()
        super().zero_grad(set_to_none)


def entropy_generator() -> torch.Generator:
    """A generator seeded from the operating system's entropy, never from configuration.

    DP noise and Poisson sampling draw from it, so nobody holding the run's
    configuration (or its seed) can regenerate the noise and subtract it (P9).
    """
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))


@contextlib.contextmanager
def privatized(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: LabelledData,
    *,
    noise_multiplier: float,
    sample_rate: float,
    max_grad_norm: float,
    normaliser: int,
    accountant: str,
    steps: int,
    generator: torch.Generator | None = None,
):
    """Yield ``(module, dp_optimizer, poisson_loader)``: ``module`` now clips per sample.

    Opacus's parts, put together by hand rather than by ``make_private``, because it
    would sample at 1 / len(loader), a rate that reveals the owner's record count,
    draw its batches from torch's global RNG, and divide by a batch size derived from
    the record count. Here the rate is the public ``sample_rate`` (P2), noise and
    sampling share ``generator`` (OS entropy unless a test passes one), noise is
    drawn with Opacus's floating-point defence (``secure_mode``), and the summed
    clipped gradients are divided by the public ``normaliser``. Per-sample clipping is
    :mod:`privacy.linear_clipping` (Opacus's flat clipping, at about the cost of a
    non-private step; ``benchmarks/step_cost.py``). On exit the hooks are removed and
    an accountant that watched every step must agree with ``steps`` at (noise, rate):
    the ledger can never describe other steps than were taken.
    """
    generator = generator or entropy_generator()
    watcher = create_accountant(mechanism=accountant)
    loader = DPDataLoader(_tensors(data), sample_rate=sample_rate, generator=generator)
    clipper = LinearClipper(module, loss_reduction="mean")
    try:  # the hooks come off whatever happens
        dp_optimizer = LinearDPOptimizer(
            optimizer,
            clipper=clipper,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=normaliser,
            loss_reduction="mean",
            generator=generator,
            secure_mode=True,
        )
        dp_optimizer.attach_step_hook(watcher.get_optimizer_hook_fn(sample_rate=sample_rate))
        yield module, dp_optimizer, loader
    finally:
        clipper.remove()
    if watcher.history != [(noise_multiplier, sample_rate, steps)]:
        raise RuntimeError(f"the accountant recorded {watcher.history}, not the planned "
                           f"{steps} steps at ({noise_multiplier}, {sample_rate})")


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
    normaliser: int,
    learning_rate: float,
    accountant: str,
    optimizer: str = "sgd",
    generator: torch.Generator | None = None,
) -> RoundOutcome:
    """Run exactly ``steps`` DP-SGD steps on ``model`` (in place).

    The model's own randomness (the VAE's reparameterisation noise) draws from the
    same private generator as the DP noise. The loss stays on the owner's machine
    (it is not a DP release): the outcome carries no loss.
    """
    generator = generator or entropy_generator()
    with privatized(
        model, _optimizer(optimizer, model, learning_rate), data,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate,
        max_grad_norm=max_grad_norm, normaliser=normaliser, accountant=accountant,
        steps=steps, generator=generator,
    ) as (private_model, dp_optimizer, loader):
        private_model.train()

        def step(xb: torch.Tensor, yb: torch.Tensor) -> float:
            dp_optimizer.zero_grad(set_to_none=True)
            # An empty Poisson batch still takes a (noise-only) step, as accounted.
            loss = private_model(xb, yb, generator=generator).sum() / max(len(xb), 1)
            loss.backward()
            dp_optimizer.step()
            return 0.0

        done, _ = repeat_steps(loader, steps, step)
    return RoundOutcome(done, float("nan"))


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
    return RoundOutcome(done, total / max(done, 1))
