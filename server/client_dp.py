"""Client-level DP (DP-FedAvg) with Flower's own strategy wrappers, and its accounting.

The wrappers clip each owner's whole update (all networks in one ArrayRecord, so
one vector) and add Gaussian noise to the average. The neighbouring relation is
"add or remove one owner's entire contribution". Aggregation is uniform (FedAvg
weighted by a constant), as the wrappers' noise scale assumes. Every owner that
can still train is selected each round (no sampling amplification), so one round
is one Gaussian release; when fewer owners' updates are averaged than the noise
was scaled for, the effective noise multiplier is smaller and is accounted as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from privacy.experiment import ExperimentConfig


@dataclass(frozen=True)
class ClientDpSettings:
    """User-level DP of the federation."""

    mode: str
    noise_multiplier: float
    clip: float
    delta: float
    num_clients: int

    @classmethod
    def from_experiment(cls, config: ExperimentConfig) -> ClientDpSettings:
        """The client-level DP keys of a validated experiment."""
        return cls(mode=config.client_dp, noise_multiplier=config.client_noise,
                   clip=config.client_clip, delta=config.client_delta,
                   num_clients=config.num_clients)


def wrap(strategy: FedAvg, dp: ClientDpSettings) -> Strategy:
    """Wrap ``strategy`` in Flower's server-side clipping wrapper for ``dp.mode``."""
    if dp.mode == "fixed":
        return DifferentialPrivacyServerSideFixedClipping(
            strategy, dp.noise_multiplier, dp.clip, dp.num_clients
        )
    if dp.mode == "adaptive":
        return DifferentialPrivacyServerSideAdaptiveClipping(
            strategy, dp.noise_multiplier, dp.num_clients, initial_clipping_norm=dp.clip
        )
    return strategy


def effective_noise_multiplier(wrapper: Strategy, averaged: int) -> float:
    """The noise multiplier of this round's release when ``averaged`` updates were averaged.

    The wrappers scale noise for ``num_sampled_clients``; a smaller average has a
    larger sensitivity (clip / averaged). With adaptive clipping, the noisy clipped
    count is a second Gaussian release whose (Andrew et al. 2021) composition with
    the update's gives the user's multiplier when every sampled owner replied.
    """
    scale = averaged / wrapper.num_sampled_clients
    update = wrapper.noise_multiplier * scale
    if isinstance(wrapper, DifferentialPrivacyServerSideAdaptiveClipping):
        count_sigma = 2 * wrapper.clipped_count_stddev
        return (update**-2 + count_sigma**-2) ** -0.5
    return update


class ClientLevelAccountant:
    """Flower's RDP accountant for the federation's user-level releases."""

    def __init__(self, dp: ClientDpSettings):
        self.delta = dp.delta
        self._acc = RdpAccountant(
            PrivacyConfig(
                target_delta=dp.delta,
                population_size=dp.num_clients,
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION,
            )
        )

    def compose(self, noise_multiplier: float, participants: int) -> float:
        """Add one round's release; return the cumulative epsilon."""
        self._acc.compose(
            GaussianPrivacyEvent(
                noise_multiplier=noise_multiplier,
                sample_size=participants,
                population_size=self._acc.config.population_size,
            )
        )
        return float(self._acc.get_epsilon(self.delta))
