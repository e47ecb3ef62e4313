"""A class-conditional variational autoencoder for small images and tables.

Labels condition both the encoder and the decoder, so sampling with chosen labels
yields labelled synthetic data for supervised tasks. Only ``nn.Linear`` layers and
element-wise activations are used: per-sample gradients are exact and cheap, and
there is no BatchNorm to break differential privacy.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from genai_models.conditioning import sample_labels
from genai_models.table_codec import OutputHeads


class ConditionalVAE(nn.Module):
    """A conditional VAE over flattened inputs in [0, 1].

    Images (``heads`` None): a Bernoulli decoder, and samples are its means. Tables
    (TVAE's output layer): a softmax head per categorical column, a Gaussian head per
    number (mean in [0, 1] and a per-record log-scale, two outputs of the same last
    layer, so Opacus sees only ``nn.Linear``), and Bernoulli heads for booleans and
    missing indicators; each column has its own loss term, and samples are drawn from
    every head's distribution (a category by its probability, not the most likely one).
    """

    def __init__(self, num_features: int, num_classes: int, hidden_dim: int, latent_dim: int,
                 heads: OutputHeads | None = None):
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.heads = heads
        numeric = heads.numeric if heads else ()
        self.encoder = nn.Sequential(
            nn.Linear(num_features + num_classes, hidden_dim),
            nn.Tanh(),
        )
        self.to_stats = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, num_features + len(numeric)),
        )
        with torch.no_grad():  # numbers start with a scale of 0.1 of their range, not 1
            self.decoder[-1].bias[num_features:] = math.log(0.1)
        bernoulli = heads.bernoulli(num_features) if heads else [True] * num_features
        # Constants of the schema, not weights: kept out of the state dict (and so out of
        # what owners send and the coordinator averages).
        self.register_buffer("_bernoulli", torch.tensor(bernoulli, dtype=torch.bool),
                             persistent=False)
        self.register_buffer("_numeric", torch.tensor(numeric, dtype=torch.long),
                             persistent=False)

    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.num_classes).to(torch.get_default_dtype())

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature logits, and the numbers' log-scales (empty for images)."""
        logits = out[:, : self.num_features]
        log_scale = out[:, self.num_features:].clamp(-4.0, 1.0)
        return logits, log_scale

    def _reconstruction(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-record negative log-likelihood of ``x``, one term per column."""
        logits, log_scale = self._split(out)
        if self.heads is None:
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        b = self._bernoulli
        nll = F.binary_cross_entropy_with_logits(logits[:, b], x[:, b],
                                                 reduction="none").sum(dim=1)
        for start, width in self.heads.categorical:
            block = slice(start, start + width)
            nll = nll - (x[:, block] * F.log_softmax(logits[:, block], dim=1)).sum(dim=1)
        if len(self._numeric):
            mean = torch.sigmoid(logits[:, self._numeric])
            z = (x[:, self._numeric] - mean) * torch.exp(-log_scale)
            nll = nll + (0.5 * z * z + log_scale).sum(dim=1)
        return nll

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
        out = self.decoder(torch.cat([z, onehot], dim=1))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return self._reconstruction(out, x) + kl

    @property
    def record_network(self) -> nn.Module:
        """The network whose gradient on real records is shared: all of the VAE."""
        return self

    def record_loss(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-record loss on real records (the negative ELBO), as in :meth:`forward`."""
        return self(x, labels, generator=generator)

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` records in [0, 1] and their labels (balanced when not given)."""
        labels = sample_labels(n, self.num_classes, labels)
        z = torch.randn(n, self.latent_dim, generator=generator)
        logits, log_scale = self._split(self.decoder(torch.cat([z, self._onehot(labels)], dim=1)))
        if self.heads is None:
            return torch.sigmoid(logits), labels
        x = (torch.rand(logits.shape, generator=generator) < torch.sigmoid(logits)).to(
            logits.dtype)
        for start, width in self.heads.categorical:
            probs = torch.softmax(logits[:, start:start + width], dim=1)
            pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            x[:, start:start + width] = F.one_hot(pick, width).to(logits.dtype)
        if len(self._numeric):
            noise = torch.randn(log_scale.shape, generator=generator)
            mean = torch.sigmoid(logits[:, self._numeric])
            x[:, self._numeric] = (mean + noise * torch.exp(log_scale)).clamp(0.0, 1.0)
        return x, labels
