"""The simulated data owners: each one's policy, built from the user's flags, and the P6 check.

In a simulation the user stands for every owner, so the flags say what each
virtual owner's ``node_config`` would: its lifetime budget (``--epsilon`` or
``--budgets``), the largest delta it accepts (``--delta``), whether it allows
non-private training (only when the whole run asks for ε = inf), and where its
ledger and signing key live (``--owner-ledgers``, default the run's ``ledgers/``:
``client-N.jsonl`` and ``owner-N.key``/``owner-N.pub``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from client.dataset import partition_identity, partition_indices, partition_pin, train_holdout
from genai_models.schema import SchemaError
from genai_models.table_codec import DataError
from privacy.experiment import ConfigError, ExperimentConfig
from privacy.policy import DEFAULT_EPSILON_BUDGET, OwnerPolicy


def parse_budgets(text: str, num_clients: int) -> dict[int, float]:
    """Per-owner lifetime budgets, written ``"0=2.0,3=4"`` (owner id = finite epsilon > 0)."""
    budgets: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            owner, eps = int(key), float(value)
        except ValueError:
            raise ConfigError(
                f"budgets: {item!r} is not OWNER=EPSILON (for example '0=2.0,3=4')"
            ) from None
        if not (eps > 0 and math.isfinite(eps)):
            raise ConfigError(f"budgets: owner {key} has epsilon {value}; expected a finite "
                              "number > 0 (ε = inf applies to the whole run: --epsilon inf)")
        if not 0 <= owner < num_clients:
            raise ConfigError(f"budgets={text!r} is not allowed; expected owner ids in "
                              f"0..{num_clients - 1}")
        budgets[owner] = eps
    return budgets


def budgets_text(value) -> str:
    """A config file's ``budgets`` (a ``[budgets]`` table or a string) as ``"0=2,3=4"``."""
    if isinstance(value, dict):
        return ",".join(f"{owner}={eps}" for owner, eps in value.items())
    if not isinstance(value, str):
        raise ConfigError(f"budgets={value!r} must be a [budgets] table or 'OWNER=EPSILON,...'")
    return value


def owner_policies(config: ExperimentConfig, sizes: list[int], budgets: dict[int, float],
                   ledger_dir: Path) -> list[OwnerPolicy]:
    """Every virtual owner's policy, as its node_config would state it.

    ``sizes``: each owner's record count (:func:`check_delta`), declared as its max-records.
    Reused ledgers must belong to the same split of the data: each simulated owner
    refuses a ledger of another split, and this says so before anything runs.
    """
    if budgets and not config.private:
        raise ConfigError("budgets: per-owner budgets need a private run; ε = inf applies to "
                          "the whole run")
    for i in range(config.num_clients):
        sidecar = partition_pin(ledger_dir / f"client-{i}.jsonl")
        wanted = partition_identity(config, i, config.num_clients, config.data_path)
        if sidecar.exists() and json.loads(sidecar.read_text("utf-8")) != wanted:
            raise ConfigError(f"--owner-ledgers: {ledger_dir} holds the ledgers of another "
                              "split of the data (dataset, seed, holdout, partition, alpha or "
                              "num-clients differ); reusing them would not bound each "
                              "record's lifetime ε: use a new folder")
    policies = []
    for i in range(config.num_clients):
        budget = budgets.get(i, config.epsilon) if config.private else DEFAULT_EPSILON_BUDGET
        node = {
            "client-id": i,
            "partition-id": i,
            "num-partitions": config.num_clients,
            "epsilon-budget": budget,
            "max-delta": config.delta,
            # The user speaks for every simulated owner: each declares the records it holds
            # (P6 was checked on them before the run, check_delta).
            "max-records": max(sizes[i], 1),
            "allow-nonprivate": not config.private,
            # The user speaks for every simulated owner: asking for distributed noise
            # is opting them in (a deployed owner opts in in its own node_config).
            "allow-distributed": config.distributed,
            "max-colluders-assumed": config.colluders,  # the user's own trust assumption
            "owner-keys": str(ledger_dir),  # where every simulated owner's .pub is
            "ledger-path": str(ledger_dir / f"client-{i}.jsonl"),
            "signing-key": str(ledger_dir / f"owner-{i}.key"),
            "data-path": config.data_path,
            "schema-path": config.schema_path,
        }
        policies.append(OwnerPolicy.from_node_config(node))
    return policies


def owner_sizes(config: ExperimentConfig) -> list[int]:
    """Records each simulated owner trains on: its partition (owner 0: with the canaries)."""
    if config.dataset == "csv" and not config.data_path:
        raise ConfigError("dataset='csv' is not allowed; expected csv together with "
                          "--data FILE.csv and --schema FILE")
    try:
        train, holdout = train_holdout(config.dataset, config.holdout, config.seed,
                                       config.data_path, config.schema_path)
    except (DataError, SchemaError) as err:  # its message names file, row, column
        raise ConfigError(str(err)) from None
    except ValueError:  # scikit-learn's split: no training record or holdout is left
        raise ConfigError(f"holdout={config.holdout:g} leaves no training records or no "
                          f"holdout of every class in {config.data_path or config.dataset}; "
                          "expected a share that leaves both, e.g. 0.3") from None
    # Judged before any budget is spent: the release is scored by classifiers (TSTR)
    # that need two classes in the training records and in the holdout.
    for part, records in (("training records", train), ("holdout", holdout)):
        if len(np.unique(records.y)) < 2:
            where = config.data_path or config.dataset
            raise ConfigError(f"{where}: the target column has one class in the {part} "
                              f"(holdout={config.holdout:g}); the release cannot be judged "
                              "(TSTR needs two classes): check the target or the holdout")
    try:
        parts = partition_indices(
            config.dataset, config.holdout, config.seed, config.num_clients, config.partition,
            config.alpha, config.data_path, config.schema_path,
        )
    except ValueError as err:
        if "exceeds" in str(err):
            raise ConfigError(f"num-clients: {err}") from None
        # flwr-datasets' Dirichlet partitioner gave up: some owner kept getting too few
        raise ConfigError(f"num-clients={config.num_clients}: a dirichlet split (alpha "
                          f"{config.alpha:g}) of {len(train)} training records leaves some "
                          "owner too few records; expected fewer owners, a larger --alpha, "
                          "or --partition iid") from None
    sizes = [len(p) for p in parts]
    sizes[0] += config.canaries
    return sizes


def check_delta(config: ExperimentConfig) -> list[int]:
    """Invariant P6 up front, for every owner: delta below 1 / (its records); loads the data.

    Returns each owner's record count (what it declares as max-records). The binding owner
    is the largest: delta below 1/n for it holds for all.
    """
    sizes = owner_sizes(config)
    if config.private and min(sizes) == 0:
        raise ConfigError(f"num-clients={config.num_clients}: an owner holds no records; "
                          "expected fewer owners or a larger --alpha")
    largest = max(sizes)
    if config.private and config.delta * largest >= 1:
        raise ConfigError(
            f"delta={config.delta!r} is not allowed; expected a value below 1/{largest} (the "
            f"largest owner holds {largest} records; a larger delta could release a whole "
            "record)"
        )
    return sizes
