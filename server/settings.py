"""What the coordinator reads from Flower's run configuration, typed once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from server.client_dp import ClientDpSettings


@dataclass(frozen=True)
class ServerSettings:
    """The experiment as the coordinator needs it."""

    model: str
    dataset: str
    schema_path: str
    num_clients: int
    rounds: int
    epsilon: float
    delta: float
    accountant: str
    hidden_dim: int
    latent_dim: int
    seed: int
    synthetic_samples: int
    run_dir: str
    server_learning_rate: float
    server_momentum: float
    client_dp: ClientDpSettings

    @property
    def private(self) -> bool:
        """False only for the non-private baseline (epsilon = inf)."""
        return math.isfinite(self.epsilon)

    @classmethod
    def from_run_config(cls, run: dict) -> ServerSettings:
        """Read the keys of ``[tool.flwr.app.config]`` that the server uses."""
        return cls(
            model=str(run["model"]),
            dataset=str(run["dataset"]),
            schema_path=str(run.get("schema-path", "")),
            num_clients=int(run["num-clients"]),
            rounds=int(run["rounds"]),
            epsilon=float(run["epsilon"]),
            delta=float(run["delta"]),
            accountant=str(run["accountant"]),
            hidden_dim=int(run["hidden-dim"]),
            latent_dim=int(run["latent-dim"]),
            seed=int(run["seed"]),
            synthetic_samples=int(run["synthetic-samples"]),
            run_dir=str(run.get("run-dir", "")),
            server_learning_rate=float(run.get("server-learning-rate", 1.0)),
            server_momentum=float(run.get("server-momentum", 0.0)),
            client_dp=ClientDpSettings(
                mode=str(run.get("client-dp", "none")),
                noise_multiplier=float(run.get("client-noise", 1.0)),
                clip=float(run.get("client-clip", 1.0)),
                delta=float(run.get("client-delta", 1e-3)),
                num_clients=int(run["num-clients"]),
            ),
        )


def run_dir_for(run_dir: str, model: str, dataset: str) -> Path:
    """The run directory: as configured, or ``runs/<UTC timestamp>-<model>-<dataset>``."""
    if run_dir:
        return Path(run_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{model}-{dataset}"
