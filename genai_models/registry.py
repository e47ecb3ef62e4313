"""Find a model family by name; a bad name is an error listing the allowed ones."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from genai_models.cgan import ConditionalGAN
from genai_models.cvae import ConditionalVAE
from genai_models.data_spec import DataSpec


def _vae(spec: DataSpec, hidden_dim: int, latent_dim: int) -> nn.Module:
    return ConditionalVAE(spec.num_features, spec.num_classes, hidden_dim, latent_dim,
                          heads=spec.heads)


def _gan(spec: DataSpec, hidden_dim: int, latent_dim: int) -> nn.Module:
    return ConditionalGAN(spec.num_features, spec.num_classes, hidden_dim, latent_dim,
                          heads=spec.heads)


MODELS: dict[str, Callable[[DataSpec, int, int], nn.Module]] = {"vae": _vae, "gan": _gan}


def build_model(name: str, spec: DataSpec, *, hidden_dim: int, latent_dim: int) -> nn.Module:
    """Build the named model family for ``spec``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(sorted(MODELS))}")
    return MODELS[name](spec, hidden_dim, latent_dim)
