"""A class-conditional variational autoencoder for small images.

Labels condition both the encoder and the decoder, so sampling with chosen labels
yields labelled synthetic data for supervised tasks. Only ``nn.Linear`` layers and
element-wise activations are used: per-sample gradients are exact and cheap, and
there is no BatchNorm to break differential privacy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genai_models.conditioning import sample_labels


class ConditionalVAE(nn.Module):
    """A conditional VAE over flattened inputs in [0, 1] with a Bernoulli decoder."""

    def __init__(self, num_features: int, num_classes: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(num_features + num_classes, hidden_dim),
            nn.Tanh(),
        )
        self.to_stats = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, num_features),
        )

    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.num_classes).to(torch.get_default_dtype())

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Return the per-record negative ELBO (reconstruction + KL), shape ``(batch,)``.

        ``generator`` draws the reparameterisation noise. Under DP it must be one
        nobody else can predict: noise known by batch position would tie each record's
        gradient to the others' positions, and the step's sensitivity would exceed C.
        """
        onehot = self._onehot(labels)
        stats = self.to_stats(self.encoder(torch.cat([x, onehot], dim=1)))
        mu, logvar = stats.chunk(2, dim=1)
        logvar = logvar.clamp(-8.0, 8.0)
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + noise * torch.exp(0.5 * logvar)
        logits = self.decoder(torch.cat([z, onehot], dim=1))
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return recon + kl

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` records in [0, 1] and their labels (balanced when not given)."""
        labels = sample_labels(n, self.num_classes, labels)
        z = torch.randn(n, self.latent_dim, generator=generator)
        logits = self.decoder(torch.cat([z, self._onehot(labels)], dim=1))
        return torch.sigmoid(logits), labels
