"""How far one owner's signed round of DP training can move the global model.

The coordinator clips every accepted update (the owner's weights minus the global
ones) to this bound, so that a malicious owner cannot push the aggregate further
than an honest owner following the recipe could (an update scaled by 1e6, or
weights of 1e38 that would make every later update overflow). Clipping an owner's
output is post-processing: its DP guarantee holds whether or not it is clipped.

The bound is a sum over the round's signed steps of each step's largest move:

* **DP-SGD with SGD** (learning rate η, clip C, noise σ, public normaliser B):
  a step moves the weights by η·(sum of clipped gradients + noise)/B. The clipped
  sum has norm ≤ C·|batch|, and a Poisson batch's size is the owner's secret; the
  bound allows real batches of up to ``MAX_BATCH_RATIO`` times the public batch
  size (the proposal's batch size should be the owners' expected batch q·n; an
  owner far above it is clipped, and so counts less). The noise's norm exceeds
  σC(√d + ``NOISE_SIGMAS``) with probability below exp(-NOISE_SIGMAS²/2)
  (Gaussian concentration of a 1-Lipschitz function).
* **Adam** (any gradient): each coordinate moves at most η·a(t) at step t, with
  a(t) = (1-β1)/(1-β1^t) · √((1-β2^t)/(1-β2)) · √(1/(1-β1²/β2)) by Cauchy-Schwarz
  on the bias-corrected moments; the GAN's generator (never private, trained
  through the private discriminator) is bounded this way whatever its gradients.

σ counts at most ``SIGMA_CEILING`` times the noise the proposal itself calibrates
to: an owner with less budget left adds more noise than that and is clipped to it
(its update is then mostly noise anyway), and a forged σ of 1e6 buys nothing.
Non-private rounds take a number of steps that depends on the owner's record count,
so they have no such bound: robust aggregation is their defence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_BATCH_RATIO = 4.0
NOISE_SIGMAS = 10.0
SIGMA_CEILING = 2.0
GENERATOR_PREFIX = "generator."
GENERATOR_LR = 2e-3
GENERATOR_BETAS = (0.5, 0.999)
ADAM_BETAS = (0.9, 0.999)  # torch's defaults, which the local Adam uses


def adam_coordinate_bound(beta1: float, beta2: float, step: int) -> float:
    """The largest |m̂/√v̂| bias-corrected Adam can take at ``step`` (1-based), any gradients."""
    ratio = beta1 * beta1 / beta2
    if ratio >= 1:
        raise ValueError(f"beta1² / beta2 = {ratio} must be below 1 for a bounded Adam step")
    return ((1 - beta1) / (1 - beta1**step) * math.sqrt((1 - beta2**step) / (1 - beta2))
            * math.sqrt(1 / (1 - ratio)))


def adam_bound(learning_rate: float, betas: tuple[float, float], steps: int,
               dimension: int) -> float:
    """The largest L2 move of ``steps`` Adam steps over ``dimension`` weights."""
    total = sum(adam_coordinate_bound(*betas, t) for t in range(1, steps + 1))
    return learning_rate * total * math.sqrt(dimension)


def dp_sgd_bound(learning_rate: float, steps: int, dimension: int, *, clip: float,
                 noise_multiplier: float, normaliser: float, batch: float) -> float:
    """The largest L2 move of ``steps`` DP-SGD steps (up to ``batch`` clipped records each)."""
    noise = noise_multiplier * clip * (math.sqrt(dimension) + NOISE_SIGMAS)
    return learning_rate * steps * (clip * batch + noise) / normaliser


@dataclass(frozen=True)
class Recipe:
    """The public parts of a proposal that decide how far a round of DP training moves."""

    model: str
    optimizer: str
    learning_rate: float
    max_grad_norm: float
    batch_size: int
    proposal_noise: float
    """The noise multiplier the proposal calibrates to (an owner with a fresh budget's)."""

    def bound(self, dimensions: dict[str, int], steps: int, noise_multiplier: float) -> float:
        """The L2 bound of one owner's update over weights ``dimensions`` (name → size)."""
        sigma = min(noise_multiplier, SIGMA_CEILING * self.proposal_noise)
        gan = self.model == "gan"
        generator = sum(n for name, n in dimensions.items()
                        if gan and name.startswith(GENERATOR_PREFIX))
        private = sum(dimensions.values()) - generator
        if self.optimizer == "adam":
            squared = adam_bound(self.learning_rate, ADAM_BETAS, steps, private) ** 2
        else:
            # The GAN's discriminator step adds batch_size fakes to the real batch and
            # divides by twice the batch size (client/gan_training.py).
            normaliser = 2 * self.batch_size if gan else self.batch_size
            records = (MAX_BATCH_RATIO + 1 if gan else MAX_BATCH_RATIO) * self.batch_size
            squared = dp_sgd_bound(self.learning_rate, steps, private,
                                   clip=self.max_grad_norm, noise_multiplier=sigma,
                                   normaliser=normaliser, batch=records) ** 2
        if generator:
            squared += adam_bound(GENERATOR_LR, GENERATOR_BETAS, steps, generator) ** 2
        return math.sqrt(squared)
