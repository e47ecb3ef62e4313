"""Local training of a conditional GAN for one round: only the discriminator is private.

Each step draws a Poisson batch of real records and a *fixed, public* number of
fakes with uniformly drawn labels (no real label reaches the generator), and takes
one DP-SGD step of the discriminator over ``cat([real, fake])`` (per-sample
clipped and noised, one accountant step). Because the number of fakes does not
depend on the private batch, adding one real record moves the step's summed
clipped gradient by at most C (P12). The generator then takes a step on the same
public number of fakes through the discriminator with its hooks disabled: it
never sees a real record (P1).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

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
from genai_models.gan_steps import generator_step
from privacy.update_bound import GENERATOR_BETAS, GENERATOR_LR


def _generator_optimizer(model: ConditionalGAN) -> torch.optim.Optimizer:
    # Its settings are public: the coordinator bounds how far the generator can move.
    return torch.optim.Adam(model.generator.parameters(), lr=GENERATOR_LR, betas=GENERATOR_BETAS)


def discriminator_batch(
    model: ConditionalGAN, real_x: torch.Tensor, real_y: torch.Tensor, num_fakes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The discriminator's step input: the real batch and ``num_fakes`` fakes, with targets.

    ``num_fakes`` is public and fixed, never the real batch's size (P12).
    """
    fake_y = torch.randint(0, model.num_classes, (num_fakes,))
    with torch.no_grad():
        fake_x = model.generate(fake_y)
    x, y = torch.cat([real_x, fake_x]), torch.cat([real_y, fake_y])
    target = torch.cat([torch.ones(len(real_x)), torch.zeros(num_fakes)])
    return x, y, target


def discriminator_loss(disc, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor):
    """Mean binary cross-entropy over the records of one discriminator batch."""
    per_record = F.binary_cross_entropy_with_logits(disc(x, y), target, reduction="none")
    return per_record.sum() / max(len(x), 1)


def _alternating_step(model: ConditionalGAN, disc, d_opt, g_opt, num_fakes: int,
                      clip: float | None):
    """One discriminator step on real and ``num_fakes`` fake records, then one generator step.

    ``disc`` is the private discriminator (Opacus clips and noises its step), or the
    plain one with ``clip`` for the non-private baseline's batch-level clipping.
    """

    def step(real_x: torch.Tensor, real_y: torch.Tensor) -> float:
        x, y, target = discriminator_batch(model, real_x, real_y, num_fakes)
        d_opt.zero_grad(set_to_none=True)
        loss = discriminator_loss(disc, x, y, target)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
        d_opt.step()
        d_opt.zero_grad(set_to_none=True)
        clipper = getattr(d_opt, "clipper", None)
        if clipper is not None:  # no per-sample gradients from the generator's step
            clipper.enabled = False
        generator_step(model, disc, g_opt, num_fakes)
        if clipper is not None:
            clipper.enabled = True
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
    normaliser: int,
    learning_rate: float,
    accountant: str,
    optimizer: str = "sgd",
    generator: torch.Generator | None = None,
) -> RoundOutcome:
    """Run exactly ``steps`` private discriminator steps (each followed by a generator step).

    Each step uses ``normaliser`` fakes, and its clipped sum is divided by twice that
    (the public size of a batch of as many real records as fakes).
    """
    g_opt = _generator_optimizer(model)
    with privatized(
        model.discriminator, _optimizer(optimizer, model.discriminator, learning_rate), data,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate,
        max_grad_norm=max_grad_norm, normaliser=2 * normaliser, accountant=accountant,
        steps=steps, generator=generator,
    ) as (disc, d_opt, loader):
        done, _ = repeat_steps(loader, steps, _alternating_step(model, disc, d_opt, g_opt,
                                                                normaliser, None))
    return RoundOutcome(done, float("nan"))


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
                             batch_size, max_norm)
    done, total = run_epochs(loader, epochs, step)
    return RoundOutcome(done, total / max(done, 1))
