"""The GAN's released generator: an average of the rounds' generators.

A GAN's generator circles around its equilibrium, and under DP each round's model also
carries that round's noise: the last round's generator is one noisy point of the path.
Averaging the path (GAN practice since Yazıcı et al., 2019) releases a steadier one.
Every generator in the average is one the coordinator already holds after a round, so
the average is post-processing: it costs no privacy. The untrained initial generator is
never in it. The VAE releases its last model (averaging did not help it:
benchmarks/RESULTS.md). Torch's :class:`~torch.optim.swa_utils.AveragedModel` keeps the
average.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def ema_decay(window: float, rounds: int) -> float:
    """The per-round decay whose time constant is ``window`` of the run's ``rounds``.

    0 (the last round's model alone) when the window is under one round.
    """
    if window <= 0 or window * rounds <= 1:
        return 0.0
    return 1.0 - 1.0 / (window * rounds)


class GeneratorAverage:
    """The generators of the rounds so far, averaged.

    Their plain mean until the window is reached, then an exponential moving average with
    :func:`ema_decay` (so that a run stopped early releases the mean of the rounds it
    completed, not mostly its first round's generator).
    """

    def __init__(self, generator: torch.nn.Module, window: float, rounds: int):
        self.decay = ema_decay(window, rounds)
        self.first_round: int | None = None
        self.last_round: int | None = None
        floor = 1.0 - self.decay

        def fold(averaged, current, models):  # AveragedModel's multi_avg_fn
            weight = max(floor, 1.0 / (float(models) + 1.0))
            for mean, new in zip(averaged, current, strict=True):
                mean.lerp_(new, weight)

        self._average = AveragedModel(generator, multi_avg_fn=fold)

    @property
    def models(self) -> int:
        """How many rounds' generators are in the average."""
        return int(self._average.n_averaged)

    def update(self, generator: torch.nn.Module, server_round: int) -> None:
        """Fold in the generator the coordinator holds after ``server_round``."""
        self._average.update_parameters(generator)
        self.first_round = server_round if self.first_round is None else self.first_round
        self.last_round = server_round

    def weights(self) -> dict[str, torch.Tensor] | None:
        """The averaged generator's state dict; None before any round was folded in."""
        if self.models == 0:
            return None
        return {k: v.detach().clone() for k, v in self._average.module.state_dict().items()}

    def describe(self) -> str:
        """What the release samples, in words (report.json's ``released_model``)."""
        if self.models == 0:
            return "the initial generator (no round completed)"
        if self.decay == 0:
            return f"the generator of round {self.last_round} (the last; no averaging)"
        return (f"the average of the generators of rounds {self.first_round}-{self.last_round} "
                f"(their mean, then exponential with decay {self.decay:.4g} a round once "
                f"{round(1 / (1 - self.decay))} are in it; post-processing)")

    def state_dict(self) -> dict:
        """A checkpoint's ``average``: the averaged generator's weights and its rounds."""
        return {"generator": self.weights(), "models": self.models,
                "first_round": self.first_round, "last_round": self.last_round}

    def load_state_dict(self, state: dict) -> None:
        """Continue the average a checkpoint kept."""
        if state["models"]:
            self._average.module.load_state_dict(state["generator"])
        self._average.n_averaged.fill_(int(state["models"]))
        self.first_round, self.last_round = state["first_round"], state["last_round"]
