"""Owner-level DP (DP-FedAvg, McMahan et al. 2018): sampled owners, clipped updates, noised sum.

Neighbouring relation: add or remove one owner's entire contribution. Each round,
every owner that can still train is selected independently with probability
``q = fraction`` (Poisson sampling; the coin is the coordinator's, from OS entropy);
each update (all networks as one vector) is clipped to C with Flower's
``clip_inputs_inplace``; the clipped updates are summed and divided by the
*fixed* expected count ``q * num_clients``, and Gaussian noise of std ``z C / (q N)``
is added. Adding or removing one owner moves the sum by at most C whoever replies,
so every round is one Poisson-subsampled Gaussian mechanism with multiplier ``z``
and rate ``q``, composed over rounds (Opacus's RDP accountant; the audit recomputes
with dp-accounting). The round is released even when no owner was sampled or
replied, so the number of participants never shows in the model.

Why not Flower's ``DifferentialPrivacyServerSide*`` wrappers: they average over the
owners who replied (sensitivity 2C/(m+1) under add/remove, not C/m), sample a
fixed number of owners (no Poisson amplification), draw noise from NumPy's global
generator, and the adaptive one noises with the clip after its update rather than
the one it used. Adaptive clipping is therefore not offered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Message
from flwr.supercore.differential_privacy import clip_inputs_inplace, get_norm

from privacy.accountant import epsilon_of
from privacy.experiment import ExperimentConfig


@dataclass(frozen=True)
class ClientDpSettings:
    """Owner-level DP of the federation."""

    noise_multiplier: float
    clip: float
    delta: float
    fraction: float
    num_clients: int

    @classmethod
    def from_experiment(cls, config: ExperimentConfig) -> ClientDpSettings | None:
        """The owner-level DP of a validated experiment, or None when it has none."""
        if config.client_dp == "none":
            return None
        return cls(noise_multiplier=config.client_noise, clip=config.client_clip,
                   delta=config.client_delta, fraction=config.fraction,
                   num_clients=config.num_clients)

    @property
    def denominator(self) -> float:
        """The fixed divisor of the sum: the expected number of sampled owners."""
        return self.fraction * self.num_clients


class ClientLevelGaussian:
    """Clip, sum, divide by a fixed count, add secret Gaussian noise; account each release."""

    def __init__(self, dp: ClientDpSettings):
        self.dp = dp
        self.rounds = 0
        self._rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))

    def aggregate(self, current: ArrayRecord, replies: list[Message]) -> ArrayRecord:
        """The next global model from the accepted replies (possibly none)."""
        names = list(current.keys())
        base = [current[k].numpy() for k in names]
        total = [np.zeros_like(a, dtype=np.float64) for a in base]
        for reply in replies:
            record = reply.content["arrays"]
            delta = [record[k].numpy().astype(np.float64) - b for k, b in zip(names, base,
                                                                               strict=True)]
            if get_norm(delta) == 0:  # nothing to add (and nothing to divide by)
                continue
            clip_inputs_inplace(delta, self.dp.clip)
            for t, d in zip(total, delta, strict=True):
                t += d
        std = self.dp.noise_multiplier * self.dp.clip / self.dp.denominator
        new = [
            (b + t / self.dp.denominator + self._rng.normal(0.0, std, b.shape)).astype(b.dtype)
            for b, t in zip(base, total, strict=True)
        ]
        self.rounds += 1
        return ArrayRecord(dict(zip(names, (Array(a) for a in new), strict=True)))

    @property
    def epsilon(self) -> float:
        """The owner-level epsilon of every release so far."""
        history = [(self.dp.noise_multiplier, self.dp.fraction, self.rounds)]
        return epsilon_of(history, accountant="rdp", delta=self.dp.delta)

    def ledger_event(self, server_round: int, run_id: int) -> dict:
        """The ``gaussian-aggregate`` line of one release (the audit recomputes it)."""
        eps = self.epsilon
        return {
            "round": server_round, "client_id": None, "run_id": run_id,
            "mechanism": "gaussian-aggregate", "noise_multiplier": self.dp.noise_multiplier,
            "sample_rate": self.dp.fraction, "steps": 1, "max_grad_norm": self.dp.clip,
            "delta": self.dp.delta, "accountant": "rdp", "epsilon": eps,
            "lifetime_epsilon": eps, "epsilon_budget": None,
        }

