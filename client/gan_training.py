"""Local training of a conditional GAN for one round: only the discriminator is private.

Each step draws a Poisson batch of real records, generates as many fakes with
uniformly drawn labels (no real label reaches the generator), and takes one
DP-SGD step of the discriminator over ``cat([real, fake])`` (per-sample clipped
and noised, one accountant step). The generator then takes a step through the
discriminator with its hooks disabled: it never sees a real record (P1).
"""

from __future__ import annotations

import torch
from opacus import GradSampleModule
from torch.nn import functional as F
from torch.utils.data import DataLoader

from privacy.accountant import History
from client.dataset import LabelledData
from client.dp_training import (
    RoundOutcome,
    _optimizer,
    _tensors,
    privatized,
    repeat_steps,
    run_epochs,
)
from genai_models.cgan import ConditionalGAN

GENERATOR_LR = 2e-3


def _generator_optimizer(model: ConditionalGAN) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.generator.parameters(), lr=GENERATOR_LR, betas=(0.5, 0.999))


def _d_loss(disc, real_x, real_y, fake_x, fake_y) -> torch.Tensor:
    x, y = torch.cat([real_x, fake_x]), torch.cat([real_y, fake_y])
    target = torch.cat([torch.ones(len(real_x)), torch.zeros(len(fake_x))])
    per_record = F.binary_cross_entropy_with_logits(disc(x, y), target, reduction="none")
    return per_record.sum() / max(len(x), 1)


def _g_step(model: ConditionalGAN, disc, g_opt, n: int) -> None:
    labels = torch.randint(0, model.num_classes, (n,))
    g_opt.zero_grad(set_to_none=True)
    logits = disc(model.generate(labels), labels)
    F.binary_cross_entropy_with_logits(logits, torch.ones(n)).backward()
    g_opt.step()


def _alternating_step(model: ConditionalGAN, disc, d_opt, g_opt, clip: float | None):
    """One discriminator step on real and fake records, then one generator step.

    ``disc`` is the private discriminator (Opacus clips and noises its step), or the
    plain one with ``clip`` for the non-private baseline's batch-level clipping.
    """

    def step(real_x: torch.Tensor, real_y: torch.Tensor) -> float:
        n = len(real_x)
        fake_y = torch.randint(0, model.num_classes, (n,))
        with torch.no_grad():
            fake_x = model.generate(fake_y)
        d_opt.zero_grad(set_to_none=True)
        loss = _d_loss(disc, real_x, real_y, fake_x, fake_y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
        d_opt.step()
        d_opt.zero_grad(set_to_none=True)
        if n:
            private = isinstance(disc, GradSampleModule)
            if private:  # no per-sample gradients from the generator's step
                disc.disable_hooks()
            _g_step(model, disc, g_opt, n)
            if private:
                disc.enable_hooks()
            d_opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def train_private_gan(
    model: ConditionalGAN,
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
    """Run exactly ``steps`` private discriminator steps (each followed by a generator step)."""
    g_opt = _generator_optimizer(model)
    with privatized(
        model.discriminator, _optimizer(optimizer, model.discriminator, learning_rate), data,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate,
        max_grad_norm=max_grad_norm, accountant=accountant, history=history,
    ) as (disc, d_opt, loader, engine):
        done, total = repeat_steps(loader, steps, _alternating_step(model, disc, d_opt, g_opt,
                                                                    None))
    return RoundOutcome(done, total / max(done, 1), list(engine.accountant.history))


def train_nonprivate_gan(
    model: ConditionalGAN,
    data: LabelledData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_norm: float = 1.0,
    optimizer: str = "sgd",
) -> RoundOutcome:
    """The no-DP baseline: the same alternating steps without per-sample clipping or noise."""
    loader = DataLoader(_tensors(data), batch_size=batch_size, shuffle=True)
    d_opt = _optimizer(optimizer, model.discriminator, learning_rate)
    step = _alternating_step(model, model.discriminator, d_opt, _generator_optimizer(model),
                             max_norm)
    done, total = run_epochs(loader, epochs, step)
    return RoundOutcome(done, total / max(done, 1), [])
