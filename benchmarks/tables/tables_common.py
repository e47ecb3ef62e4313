"""What the table benchmark's peer-side scripts share: the schema, the split, the frames.

Runs in .venv-peers, importing fedsynth's schema loader (and, in score.py, its SDMetrics
scoring) from the checkout. The split repeats fedsynth's own (scikit-learn's stratified
``train_test_split`` of the row indices, labels coded by the schema's class order, the
run's seed), so every system trains on the same rows and is scored on the same holdout.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the fedsynth checkout
from genai_models.schema import Schema, load_schema  # noqa: E402

HOLDOUT = 0.3


@dataclass(frozen=True)
class TableSchema:
    """The fedsynth schema, and the column groups the scorer and the peers need."""

    schema: Schema
    target: str
    classes: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]]
    numeric: dict[str, tuple[float, float, str]]  # name: (min, max, integer or continuous)

    @classmethod
    def load(cls, path: str | Path) -> TableSchema:
        """Read a schema with fedsynth's own loader."""
        schema = load_schema(path)
        cats = {c.name: (c.categories if c.type == "categorical" else ("False", "True"))
                for c in schema.features if not c.numeric}
        nums = {c.name: (c.min, c.max, c.type) for c in schema.features if c.numeric}
        return cls(schema, schema.target, schema.target_column.categories or ("False", "True"),
                   cats, nums)

    def read(self, path: str | Path) -> pd.DataFrame:
        """A CSV with categoricals as strings and numbers as floats."""
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for name in self.numeric:
            frame[name] = pd.to_numeric(frame[name])
        return frame

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """The target coded by the schema's class order (fedsynth's labels)."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return frame[self.target].astype(str).map(lookup).to_numpy()

    def split(self, frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The training rows and holdout fedsynth uses and holdout for ``seed``."""
        train, holdout = train_test_split(np.arange(len(frame)), test_size=HOLDOUT,
                                          stratify=self.labels(frame), random_state=seed)
        return frame.iloc[train].reset_index(drop=True), frame.iloc[holdout].reset_index(drop=True)
