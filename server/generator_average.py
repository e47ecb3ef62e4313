"""The GAN's released generator: an exponential moving average (EMA) of the rounds' generators.

A GAN's generator circles around its equilibrium, and under DP each round's model also
carries that round's noise: the last round's generator is one noisy point of the path.
Averaging the path (GAN practice since Yazıcı et al., 2019) releases a steadier one.
Every generator in the average is one the coordinator already holds, so the average is
post-processing: it costs no privacy. The VAE releases its last model (averaging did not
help it: benchmarks/RESULTS.md). Torch's :class:`~torch.optim.swa_utils.AveragedModel`
keeps the average.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ema_decay(window: float, rounds: int) -> float:
    """The per-round decay whose time constant is ``window`` of the run's ``rounds``.

    0 (the last round's model alone) when the window is under one round. The first
    model's weight in the average is then about e^(-1/window) (5% for a third).
    """
    if window <= 0 or window * rounds <= 1:
        return 0.0
    return 1.0 - 1.0 / (window * rounds)


class GeneratorAverage:
    """The EMA of the generators the coordinator has held, round by round."""

    def __init__(self, model: torch.nn.Module, window: float, rounds: int):
        self.decay = ema_decay(window, rounds)
        self._average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay))

    def update(self, model: torch.nn.Module) -> None:
        """Fold in ``model`` (the first call copies it)."""
        self._average.update_parameters(model)

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged model's state dict (the model's own keys)."""
        return {k: v.detach().clone() for k, v in self._average.module.state_dict().items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps to resume the average (weights and models folded in)."""
        return self._average.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue the average a checkpoint kept."""
        self._average.load_state_dict(state)
