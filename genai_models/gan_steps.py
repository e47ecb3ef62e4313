"""The GAN's steps that hold no real record: the generator's step and the fakes' term.

Owners take them inside local training; under distributed noise the coordinator
takes them on the discriminator that the secure sum released (post-processing).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from genai_models.cgan import ConditionalGAN

MODE_SEEKING = 1.0
"""Weight of the mode-seeking term in the table generator's loss (MSGAN's lambda), for
owners training the generator under local noise (against collapse: Titanic, ε 8, 97%
repeated rows without it).

Tables only: on digits (a centralised replica of distributed noise, ε 8, 300 steps) it
kept the generator's records unrelated to their labels (TSTR 0.09-0.23 with it, 0.77
without)."""
MODE_SEEKING_DISTRIBUTED = 0.1
"""The same weight for the coordinator's generator under distributed noise, which
steps against a discriminator trained on the whole federation's sum: at 1.0 it spread
breast-cancer's numbers two to three times wider than the real ones (quality 0.67,
hidden 256, seed 0); at 0.1, 0.74 (median of 3 seeds), Titanic 0.81 (benchmarks/RESULTS.md)."""


def generator_step(model: ConditionalGAN, disc, optimizer: torch.optim.Optimizer,
                   n: int, mode_seeking: float = MODE_SEEKING) -> None:
    """One generator step on ``n`` fakes (in pairs sharing a label and condition) (P1).

    A conditioned fake pays CTGAN's cross-entropy for missing its condition.

    ``disc`` is the discriminator to fool (the model's own, or its privatized view).
    Beside the non-saturating loss, for tables, MSGAN's mode-seeking term (Mao et al.,
    2019): two noise vectors must give outputs as far apart as the vectors are. Under
    DP the discriminator learns slowly and a table generator otherwise settles on the
    one row it likes best (measured: 97% repeated rows on the Titanic table at ε 8).
    """
    half = max(1, n // 2)
    labels = torch.randint(0, model.num_classes, (half,)).repeat(2)
    cond = model.conditions.draw(half, model.frequencies).repeat(2, 1)
    z = torch.randn(2 * half, model.latent_dim)
    optimizer.zero_grad(set_to_none=True)
    fake, logits = model.generator(z, labels, cond, with_logits=True)
    loss = F.binary_cross_entropy_with_logits(disc(fake, labels), torch.ones(2 * half))
    loss = loss + model.conditions.loss(logits, cond)
    if model.generator.heads is not None:
        spread = (fake[:half] - fake[half:]).abs().mean(1) / (z[:half] - z[half:]).abs().mean(1)
        loss = loss + mode_seeking / (spread.mean() + 1e-5)
    loss.backward()
    optimizer.step()


def fake_losses(model: ConditionalGAN, n: int) -> torch.Tensor:
    """The discriminator's loss on each of ``n`` fresh fakes with uniform labels: −log(1 − D)."""
    labels = torch.randint(0, model.num_classes, (n,))
    with torch.no_grad():
        fakes = model.generate(labels)
    return F.softplus(model.discriminator(fakes, labels))
