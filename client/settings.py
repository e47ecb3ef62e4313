"""What one data owner reads from Flower's run and node configuration, typed once."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flwr.app import Context

ACCOUNTANTS = ("rdp", "prv")


def parse_budgets(text: str) -> dict[int, float]:
    """Per-owner budget overrides, written ``"0=2.0,3=4"`` (owner id = epsilon)."""
    budgets: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            budgets[int(key)] = float(value)
        except ValueError:
            raise ValueError(
                f"budgets: {item!r} is not OWNER=EPSILON (for example '0=2.0,3=4')"
            ) from None
        if not budgets[int(key)] > 0:
            raise ValueError(f"budgets: owner {key} has epsilon {value}; expected a number > 0")
    return budgets


@dataclass(frozen=True)
class ClientSettings:
    """The experiment as seen by one owner, plus who that owner is."""

    client_id: int
    model: str
    dataset: str
    data_path: str
    own_data_path: str
    schema_path: str
    num_partitions: int
    partition: str
    alpha: float
    holdout: float
    seed: int
    rounds: int
    local_epochs: int
    epsilon_budget: float
    delta: float
    accountant: str
    max_grad_norm: float
    batch_size: int
    learning_rate: float
    optimizer: str
    hidden_dim: int
    latent_dim: int
    ledger_path: str
    canaries: int

    @property
    def private(self) -> bool:
        """False only for the non-private baseline (epsilon = inf)."""
        return math.isfinite(self.epsilon_budget)

    @classmethod
    def from_context(cls, context: Context, run_config: dict | None = None) -> ClientSettings:
        """Read run_config (the experiment) and node_config (who this owner is).

        ``run_config`` replaces ``context.run_config`` when the runner binds it.

        A node may hold a tighter budget than the federation's default through
        ``epsilon-budget`` in its node_config, and its own file through ``data-path``.
        """
        run = context.run_config if run_config is None else run_config
        node = context.node_config
        client_id = int(node.get("client-id", node.get("partition-id", context.node_id)))
        budgets = parse_budgets(str(run.get("budgets", "")))
        budget = float(node.get("epsilon-budget", budgets.get(client_id, run["epsilon"])))
        settings = cls(
            client_id=client_id,
            model=str(run["model"]),
            dataset=str(run["dataset"]),
            data_path=str(run.get("data-path", "")),
            own_data_path=str(node.get("data-path", "")),
            schema_path=str(node.get("schema-path", run.get("schema-path", ""))),
            num_partitions=int(node.get("num-partitions", run["num-clients"])),
            partition=str(run["partition"]),
            alpha=float(run["alpha"]),
            holdout=float(run["holdout"]),
            seed=int(run["seed"]),
            rounds=int(run["rounds"]),
            local_epochs=int(run["local-epochs"]),
            epsilon_budget=budget,
            delta=float(run["delta"]),
            accountant=str(run["accountant"]),
            max_grad_norm=float(run["max-grad-norm"]),
            batch_size=int(run["batch-size"]),
            learning_rate=float(run["learning-rate"]),
            optimizer=str(run.get("optimizer", "sgd")),
            hidden_dim=int(run["hidden-dim"]),
            latent_dim=int(run["latent-dim"]),
            ledger_path=str(node.get("ledger-path", "")),
            canaries=int(run.get("canaries", 0)),
        )
        if settings.accountant not in ACCOUNTANTS:
            raise ValueError(
                f"accountant={settings.accountant!r}; allowed: {', '.join(ACCOUNTANTS)}"
            )
        return settings
