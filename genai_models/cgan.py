"""A class-conditional GAN for small images.

The discriminator is the only network that sees real records; the generator
learns only through the discriminator's output on generated samples, so a DP
guarantee on the discriminator covers the generator as post-processing (P1).
Both networks live in one module so that federated averaging moves them together.
LeakyReLU MLPs with no BatchNorm keep per-sample gradients exact.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genai_models.conditioning import sample_labels


class Generator(nn.Module):
    """Noise and a label to an image in [0, 1]."""

    def __init__(self, num_features: int, num_classes: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, num_features),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], one per row of ``z``."""
        onehot = F.one_hot(labels.long(), self.num_classes).to(z.dtype)
        return torch.sigmoid(self.net(torch.cat([z, onehot], dim=1)))


class Discriminator(nn.Module):
    """An image and its label to a real-vs-fake logit."""

    def __init__(self, num_features: int, num_classes: int, hidden_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(num_features + num_classes, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One logit per row, shape ``(batch,)``."""
        onehot = F.one_hot(labels.long(), self.num_classes).to(x.dtype)
        return self.net(torch.cat([x, onehot], dim=1)).squeeze(1)


class ConditionalGAN(nn.Module):
    """Generator and discriminator, averaged together, trained by the caller."""

    def __init__(self, num_features: int, num_classes: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.generator = Generator(num_features, num_classes, hidden_dim, latent_dim)
        self.discriminator = Discriminator(num_features, num_classes, hidden_dim)

    def generate(
        self, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Fake images for ``labels`` (differentiable, for the generator's step)."""
        z = torch.randn(len(labels), self.latent_dim, generator=generator)
        return self.generator(z, labels)

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` records in [0, 1] and their labels (balanced when not given)."""
        labels = sample_labels(n, self.num_classes, labels)
        return self.generate(labels, generator), labels
