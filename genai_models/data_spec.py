"""Public metadata about a dataset: what a model needs to know without seeing a record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genai_models.schema import load_schema
from genai_models.table_codec import OutputHeads, TableCodec

SCHEMA_DIR = Path(__file__).with_name("schemas")
TABLES = ("breast-cancer", "wine")
DATASETS = ("digits", *TABLES, "csv")


@dataclass(frozen=True)
class DataSpec:
    """Width, label set and value range of a dataset's model inputs, all public (P5).

    Images are stored flattened with ``value_max`` their documented upper bound
    (16 for scikit-learn's digits), never a statistic of the data; tables are
    encoded by their schema's codec into ``num_features`` values in [0, 1].
    """

    name: str
    kind: str
    num_features: int
    num_classes: int
    value_max: float = 1.0
    image_shape: tuple[int, int] | None = None
    heads: OutputHeads | None = None
    """Tables: which encoded features are a categorical's one-hot, which are numbers."""


DIGITS = DataSpec(name="digits", kind="image", num_features=64, num_classes=10,
                  value_max=16.0, image_shape=(8, 8))


def resolve(dataset: str, schema_path: str = "") -> tuple[DataSpec, TableCodec | None]:
    """The spec of a dataset (and its codec for tables), from public metadata only."""
    if dataset == "digits":
        return DIGITS, None
    if dataset in TABLES:
        schema_path = str(SCHEMA_DIR / f"{dataset}.toml")
    elif dataset == "csv":
        if not schema_path:
            raise ValueError("dataset 'csv' needs a schema: --schema FILE.toml")
    else:
        raise ValueError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    codec = TableCodec(load_schema(schema_path))
    spec = DataSpec(name=dataset, kind="table", num_features=codec.width,
                    num_classes=len(codec.schema.classes), heads=codec.heads())
    return spec, codec
