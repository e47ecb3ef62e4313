"""Load a data owner's records: a partition of a built-in dataset, or its own file.

The holdout split (stratified, fixed by the seed) is made before partitioning and
never trains (invariant P7). Non-IID partitions come from flwr-datasets'
partitioners over an in-memory dataset, so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from genai_models import BUILTIN_SPECS, DataSpec

PARTITIONS = ("iid", "dirichlet")


@dataclass(frozen=True)
class LabelledData:
    """Records scaled to [0, 1] (by the public value range) and their integer labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def _load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, DataSpec]:
    if name not in BUILTIN_SPECS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(BUILTIN_SPECS))}")
    spec = BUILTIN_SPECS[name]
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = np.clip(bunch.data / spec.value_max, 0.0, 1.0).astype(np.float32)
        return x, bunch.target.astype(np.int64), spec
    raise AssertionError(f"no loader for built-in dataset {name!r}")  # pragma: no cover


@lru_cache(maxsize=4)
def train_holdout(name: str, holdout: float, seed: int) -> tuple[LabelledData, LabelledData]:
    """Split a built-in dataset into (pooled training records, holdout)."""
    from sklearn.model_selection import train_test_split

    x, y, _ = _load_builtin(name)
    x_tr, x_ho, y_tr, y_ho = train_test_split(
        x, y, test_size=holdout, stratify=y, random_state=seed
    )
    return LabelledData(x_tr, y_tr), LabelledData(x_ho, y_ho)


@lru_cache(maxsize=4)
def partition_indices(
    name: str, holdout: float, seed: int, num_partitions: int, scheme: str, alpha: float
) -> tuple[np.ndarray, ...]:
    """Indices into the pooled training records for each partition."""
    import pandas as pd
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    train, _ = train_holdout(name, holdout, seed)
    if num_partitions > len(train):
        raise ValueError(
            f"num-clients={num_partitions} exceeds the {len(train)} training records of {name!r}"
        )
    frame = pd.DataFrame({"index": np.arange(len(train)), "label": train.y})
    if scheme == "iid":
        partitioner = IidPartitioner(num_partitions=num_partitions)
    elif scheme == "dirichlet":
        partitioner = DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=alpha,
            min_partition_size=max(1, min(10, len(train) // (2 * num_partitions))),
            seed=seed,
        )
    else:
        raise ValueError(f"unknown partition {scheme!r}; allowed: {', '.join(PARTITIONS)}")
    partitioner.dataset = Dataset.from_pandas(frame, preserve_index=False)
    return tuple(
        np.asarray(partitioner.load_partition(i)["index"], dtype=np.int64)
        for i in range(num_partitions)
    )


def load_partition(
    name: str,
    partition_id: int,
    num_partitions: int,
    *,
    scheme: str,
    alpha: float,
    holdout: float,
    seed: int,
) -> LabelledData:
    """The records of one simulated owner."""
    train, _ = train_holdout(name, holdout, seed)
    idx = partition_indices(name, holdout, seed, num_partitions, scheme, alpha)[partition_id]
    return LabelledData(train.x[idx], train.y[idx])


def canaries(spec: DataSpec, k: int, seed: int) -> tuple[LabelledData, LabelledData]:
    """2k out-of-distribution records: k to insert into one owner's data, k held out.

    Each canary is a sparse random pattern of bright pixels with a random label,
    unlike any digit; the two halves come from the same distribution, so the
    attacks' success in telling them apart measures memorisation of the inserted ones.
    """
    rng = np.random.default_rng(10_000 + seed)
    x = (rng.random((2 * k, spec.num_features)) < 0.25).astype(np.float32)
    y = rng.integers(0, spec.num_classes, 2 * k)
    return LabelledData(x[:k], y[:k]), LabelledData(x[k:], y[k:])


def with_canaries(data: LabelledData, spec: DataSpec, k: int, seed: int) -> LabelledData:
    """``data`` with the k inserted canaries appended (the canary audit's owner)."""
    inserted, _ = canaries(spec, k, seed)
    return LabelledData(np.concatenate([data.x, inserted.x]), np.concatenate([data.y, inserted.y]))


def load_npz(path: str | Path, spec: DataSpec) -> LabelledData:
    """An owner's own image file: ``x`` (raw pixel values) and ``y`` arrays.

    Pixels are scaled by the public ``spec.value_max`` and clipped into range
    (invariant P5); a label outside the spec is an error naming the file.
    """
    path = Path(path)
    try:
        with np.load(path) as data:
            x, y = np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: cannot read arrays 'x' and 'y' ({err})") from None
    x = x.reshape(len(x), -1)
    if x.shape[1] != spec.num_features or len(x) != len(y):
        raise ValueError(
            f"{path}: x has shape {x.shape}, y {y.shape}; "
            f"expected (n, {spec.num_features}) and (n,)"
        )
    bad = np.flatnonzero((y < 0) | (y >= spec.num_classes))
    if bad.size:
        raise ValueError(
            f"{path}: row {bad[0]}: label {y[bad[0]]} outside 0..{spec.num_classes - 1}"
        )
    x = np.clip(x / spec.value_max, 0.0, 1.0).astype(np.float32)
    return LabelledData(x, y.astype(np.int64))
