"""Which Flower strategy combines the accepted updates, and what each means for privacy.

- ``fedavg``: Flower's ``FedAvgM`` (server momentum; plain FedAvg at momentum 0),
  uniform over owners. The only choice with owner-level DP, whose noise is
  calibrated for a clipped sum.
- ``median``: ``FedMedian``, the coordinate-wise median of the updates.
- ``trimmed-mean``: ``FedTrimmedAvg`` (beta 0.2: the largest and smallest 20% of
  each coordinate dropped before averaging).
- ``krum``: ``Krum``, the single update closest to its neighbours (one malicious
  owner tolerated from four owners up).

Record-level DP is unaffected by the choice: every owner's update is already DP
with respect to its records, and any aggregation of DP updates is post-processing.
The robust rules bound what one malicious owner's update can do to the model; they
do not change any owner's epsilon.
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, FedAvgM, FedMedian, FedTrimmedAvg, Krum

from privacy.experiment import ExperimentConfig


def build_strategy(settings: ExperimentConfig) -> FedAvg:
    """The inner strategy for ``settings.aggregation``, weighting every owner alike."""
    common = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": settings.num_clients,
        "min_available_nodes": settings.num_clients,
        # Uniform: an owner's record count is private (and owner-level DP's noise
        # assumes a uniform sum over owners).
        "weighted_by_key": "unit-weight",
    }
    if settings.aggregation == "median":
        return FedMedian(**common)
    if settings.aggregation == "trimmed-mean":
        return FedTrimmedAvg(beta=0.2, **common)
    if settings.aggregation == "krum":
        return Krum(num_malicious_nodes=1 if settings.num_clients >= 4 else 0, **common)
    return FedAvgM(server_learning_rate=settings.server_learning_rate,
                   server_momentum=settings.server_momentum, **common)
