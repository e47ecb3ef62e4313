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
import pandas as pd

from genai_models import DataSpec, resolve
from genai_models.table_codec import DataError, TableCodec
from privacy.experiment import PARTITIONS
from privacy.ledger import beside


@dataclass(frozen=True)
class LabelledData:
    """Records scaled to [0, 1] (by the public value range) and their integer labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def sklearn_table(name: str) -> pd.DataFrame:
    """A shipped scikit-learn table with its target named and labelled as in its schema."""
    from sklearn.datasets import load_breast_cancer, load_wine

    loader = {"breast-cancer": load_breast_cancer, "wine": load_wine}[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    target = {"breast-cancer": "diagnosis", "wine": "class"}[name]
    frame[target] = [str(bunch.target_names[i]) for i in frame.pop("target")]
    return frame


def read_csv(path: str | Path, codec: TableCodec) -> tuple[np.ndarray, np.ndarray]:
    """Encode a CSV file by its schema; errors name the file, row, column and value."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    return codec.encode(frame, str(path))


@lru_cache(maxsize=8)
def _records(name: str, data_path: str, schema_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Every record of a dataset, encoded for the models."""
    spec, codec = resolve(name, schema_path)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = np.clip(bunch.data / spec.value_max, 0.0, 1.0).astype(np.float32)
        return x, bunch.target.astype(np.int64)
    if name == "csv":
        if not data_path:
            raise ValueError("dataset 'csv' needs its file: --data FILE.csv")
        return read_csv(data_path, codec)
    return codec.encode(sklearn_table(name), f"scikit-learn {name}")


@lru_cache(maxsize=8)
def train_holdout(
    name: str, holdout: float, seed: int, data_path: str = "", schema_path: str = ""
) -> tuple[LabelledData, LabelledData]:
    """Split a dataset into (pooled training records, holdout), stratified by label."""
    from sklearn.model_selection import train_test_split

    x, y = _records(name, data_path, schema_path)
    try:
        parts = train_test_split(x, y, test_size=holdout, stratify=y, random_state=seed)
    except ValueError:  # a class too rare to stratify: split without stratification
        parts = train_test_split(x, y, test_size=holdout, random_state=seed)
    x_tr, x_ho, y_tr, y_ho = parts
    return LabelledData(x_tr, y_tr), LabelledData(x_ho, y_ho)


@lru_cache(maxsize=8)
def _partitioner(
    name: str,
    holdout: float,
    seed: int,
    num_partitions: int,
    scheme: str,
    alpha: float,
    data_path: str,
    schema_path: str,
):
    """flwr-datasets' partitioner over the pooled training records' indices and labels."""
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    train, _ = train_holdout(name, holdout, seed, data_path, schema_path)
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
    return partitioner


def partition_indices(
    name: str,
    holdout: float,
    seed: int,
    num_partitions: int,
    scheme: str,
    alpha: float,
    data_path: str = "",
    schema_path: str = "",
    partition_id: int | None = None,
) -> tuple[np.ndarray, ...] | np.ndarray:
    """Indices into the pooled training records of one partition, or of each (``None``).

    One owner loads only its own partition: the cost does not grow with the number
    of owners (the coordinator's once-per-run checks load them all).
    """
    partitioner = _partitioner(name, holdout, seed, num_partitions, scheme, alpha,
                               data_path, schema_path)
    ids = range(num_partitions) if partition_id is None else (partition_id,)
    parts = tuple(np.asarray(partitioner.load_partition(i)["index"], dtype=np.int64)
                  for i in ids)
    return parts if partition_id is None else parts[0]


def partition_identity(experiment, partition_id: int, num_partitions: int,
                       data_path: str) -> dict:
    """What fixes which records a simulated partition holds: the same identity, the same records."""
    return {
        "dataset": experiment.dataset,
        "data_path": data_path,
        "holdout": experiment.holdout,
        "seed": experiment.seed,
        "partition": experiment.partition,
        "alpha": experiment.alpha if experiment.partition == "dirichlet" else None,
        "num_partitions": num_partitions,
        "partition_id": partition_id,
    }


def partition_pin(ledger_path: str | Path) -> Path:
    """Where a simulated owner's ledger records the identity of its partition."""
    return beside(ledger_path, ".partition.json")


def load_partition(
    name: str,
    partition_id: int,
    num_partitions: int,
    *,
    scheme: str,
    alpha: float,
    holdout: float,
    seed: int,
    data_path: str = "",
    schema_path: str = "",
) -> LabelledData:
    """The records of one simulated owner."""
    train, _ = train_holdout(name, holdout, seed, data_path, schema_path)
    idx = partition_indices(name, holdout, seed, num_partitions, scheme, alpha, data_path,
                            schema_path, partition_id)
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


def load_owner_file(path: str | Path, spec: DataSpec, codec: TableCodec | None) -> LabelledData:
    """An owner's own file in deployment: NPZ for images, CSV (by the schema) for tables."""
    if codec is not None:
        return LabelledData(*read_csv(path, codec))
    return load_npz(path, spec)


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
    # NaN compares false both ways, and 1.5 is in range: a label must be a whole number.
    numeric = np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.complexfloating)
    if not numeric:
        raise ValueError(f"{path}: labels of type {y.dtype}; expected integers "
                         f"0..{spec.num_classes - 1}")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (y < 0)
                         | (y >= spec.num_classes))
    if bad.size:
        raise ValueError(
            f"{path}: row {bad[0]}: label {y[bad[0]]} outside 0..{spec.num_classes - 1}"
        )
    x = np.clip(x / spec.value_max, 0.0, 1.0).astype(np.float32)
    return LabelledData(x, y.astype(np.int64))
