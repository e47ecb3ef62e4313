"""Encode a table into model inputs in [0, 1] and decode samples back, from the schema alone.

TVAE-style: one-hot categoricals, bounded numbers scaled by their declared bounds and
scale (linear or log; out-of-bound values are clipped), optionally as a public bin plus
an offset within it, booleans as 0/1, and a missing-indicator column for each nullable
column. The target column becomes the class label that
conditions the models. Nothing here looks at the data to decide how to encode it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from genai_models.schema import MISSING, Column, Schema

TRUE = {"true", "1", "1.0", "yes", "y", "t"}
FALSE = {"false", "0", "0.0", "no", "n", "f"}


MAX_REPORTED = 20  # bad cells named in one message; the rest are counted


class DataError(ValueError):
    """Values the schema does not allow; the message names file, row, column and value."""


def _cells_message(source: str, problems: list) -> str:
    """Every bad cell of a file in one line: the first MAX_REPORTED by row, then a count."""
    named = sorted((p for p in problems if p is not None), key=lambda p: p[0])
    shown = [f"row {i + 1} (line {i + 2}), column {column!r}: {why} {value!r}"
             for i, column, value, why in named[:MAX_REPORTED]]
    more = len(problems) - len(shown)
    if len(problems) == 1:
        return f"{source}: {shown[0]}"
    tail = f"; and {more} more" if more else ""
    return f"{source}: {len(problems)} bad cells: " + "; ".join(shown) + tail


def to_unit(col: Column, values: np.ndarray) -> np.ndarray:
    """A number's position in [0, 1] by its declared bounds and scale (clipped to them)."""
    shifted = np.clip(values, col.min, col.max) - col.min
    if col.scale == "log":
        return np.log1p(shifted / col.log_offset) / np.log1p((col.max - col.min) / col.log_offset)
    return shifted / (col.max - col.min)


def from_unit(col: Column, unit: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_unit` (positions outside [0, 1] are clipped first)."""
    unit = np.clip(unit, 0.0, 1.0)
    if col.scale == "log":
        span = np.log1p((col.max - col.min) / col.log_offset)
        return np.expm1(unit * span) * col.log_offset + col.min
    return unit * (col.max - col.min) + col.min


def bin_layout(col: Column) -> tuple[int, bool]:
    """A number's bin positions and whether an offset within the bin follows them.

    (0, True): no bins, the value itself. An integer column with at most ``bins`` values
    gets one position per value and no offset (exact).
    """
    if not col.bins:
        return 0, True
    values = int(col.max - col.min) + 1
    if col.type == "integer" and values <= col.bins:
        return values, False
    return col.bins, True


@dataclass(frozen=True)
class Segment:
    """Where one column's encoding sits in the feature vector."""

    column: Column
    start: int
    width: int  # value columns, without the missing indicator

    @property
    def end(self) -> int:
        """One past the last encoded position (indicator included)."""
        return self.start + self.width + int(self.column.nullable)


MAX_CONDITIONED = 1000
"""The most categories training-by-sampling conditions on (all categorical columns
together); a schema with more conditions on none. Their counts ride in an owner's
signed event, which a coordinator reads only up to a bounded size (about 7,500
characters for 1,000 counts)."""


@dataclass(frozen=True)
class OutputHeads:
    """How a model's output maps onto a table's encoded columns (from the schema alone).

    ``categorical`` holds (start, width) of each categorical's one-hot block and of each
    binned number's bins (a softmax head), ``numeric`` the positions of numbers, or of
    their offsets within a bin, in [0, 1] (a Gaussian head);
    every other position (booleans, missing indicators) is a Bernoulli head.
    ``conditioned`` holds the blocks of the categorical columns alone (not the bins):
    the GAN's training-by-sampling conditions on them (none beyond MAX_CONDITIONED).
    """

    categorical: tuple[tuple[int, int], ...]
    numeric: tuple[int, ...]
    conditioned: tuple[tuple[int, int], ...] = ()

    def bernoulli(self, width: int) -> list[bool]:
        """For each of ``width`` encoded positions, whether it is a Bernoulli head."""
        flags = [True] * width
        for start, block in self.categorical:
            flags[start:start + block] = [False] * block
        for position in self.numeric:
            flags[position] = False
        return flags


class TableCodec:
    """The schema's encoder and decoder."""

    def __init__(self, schema: Schema):
        self.schema = schema
        segments, pos = [], 0
        for col in schema.features:
            if col.numeric:
                bins, offset = bin_layout(col)
                width = bins + int(offset)
            else:
                width = len(col.categories) if col.type == "categorical" else 1
            segments.append(Segment(col, pos, width))
            pos = segments[-1].end
        self.segments = tuple(segments)
        self.width = pos

    def heads(self) -> OutputHeads:
        """The output head of every encoded position (see :class:`OutputHeads`)."""
        categorical, numeric, conditioned = [], [], []
        for seg in self.segments:
            if seg.column.type == "categorical":
                categorical.append((seg.start, seg.width))
                conditioned.append((seg.start, seg.width))
            elif seg.column.numeric:
                bins, offset = bin_layout(seg.column)
                if bins:
                    categorical.append((seg.start, bins))
                if offset:
                    numeric.append(seg.start + bins)
        if sum(width for _, width in conditioned) > MAX_CONDITIONED:
            conditioned = []
        return OutputHeads(categorical=tuple(categorical), numeric=tuple(numeric),
                           conditioned=tuple(conditioned))

    @staticmethod
    def _bad(problems: list, mask: np.ndarray, series: pd.Series, column: str, why: str):
        """Note every row of ``mask`` as a bad cell (row index, column, value, why)."""
        for i in np.flatnonzero(mask)[:MAX_REPORTED]:
            problems.append((int(i), column, series.iloc[int(i)], why))
        problems.extend([None] * max(0, int(mask.sum()) - MAX_REPORTED))  # counted only

    def _strings(self, series: pd.Series) -> tuple[pd.Series, np.ndarray]:
        text = series.astype("string").str.strip()
        missing = (series.isna() | text.str.lower().isin(MISSING).fillna(True)).to_numpy()
        return text, missing

    def _encode_column(self, seg: Segment, series: pd.Series, problems: list) -> np.ndarray:
        """One column's encoding; every bad cell is added to ``problems``."""
        col = seg.column
        text, missing = self._strings(series)
        if not col.nullable:
            self._bad(problems, missing, series, col.name,
                      "missing value (column is not nullable):")
        out = np.zeros((len(series), seg.end - seg.start), dtype=np.float32)
        present = ~missing
        if col.numeric:
            values = pd.to_numeric(text.where(present), errors="coerce").to_numpy(float)
            nan = present & np.isnan(values)
            self._bad(problems, nan, series, col.name, "not a number:")
            if col.type == "integer":
                fraction = present & ~nan & (np.nan_to_num(values) % 1 != 0)
                self._bad(problems, fraction, series, col.name, "not an integer:")
            values = np.nan_to_num(values, nan=col.min)
            bins, offset = bin_layout(col)
            unit = to_unit(col, values)
            rows = np.flatnonzero(present)
            if not bins:
                out[rows, 0] = unit[rows]
            elif not offset:  # one position per integer value
                index = np.clip(np.round(values) - col.min, 0, bins - 1).astype(int)
                out[rows, index[rows]] = 1.0
            else:
                index = np.minimum(np.floor(unit * bins), bins - 1).astype(int)
                out[rows, index[rows]] = 1.0
                out[rows, bins] = (unit * bins - index)[rows]
        elif col.type == "categorical":
            lookup = {c: k for k, c in enumerate(col.categories)}
            codes = text.map(lookup)
            unknown = present & codes.isna().to_numpy()
            self._bad(problems, unknown, series, col.name,
                      f"unknown category (allowed: {', '.join(col.categories)}):")
            rows = np.flatnonzero(present & ~unknown)
            out[rows, codes.to_numpy()[rows].astype(int)] = 1.0
        else:  # boolean
            low = text.str.lower()
            truth = low.isin(TRUE).fillna(False).to_numpy()
            falsity = low.isin(FALSE).fillna(False).to_numpy()
            self._bad(problems, present & ~truth & ~falsity, series, col.name,
                      "not a boolean:")
            out[truth & present, 0] = 1.0
        if col.nullable:
            out[missing, -1] = 1.0
        return out

    def encode(self, frame: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Features in [0, 1] and integer class labels of the target column."""
        absent = [c.name for c in self.schema.columns if c.name not in frame.columns]
        if absent:
            raise DataError(f"{source}: missing column(s) {', '.join(map(repr, absent))} "
                            f"declared in {self.schema.source}")
        extra = [c for c in frame.columns if c not in {x.name for x in self.schema.columns}]
        if extra:
            raise DataError(f"{source}: column(s) {', '.join(map(repr, extra))} are not in "
                            f"the schema {self.schema.source}")
        frame = frame.reset_index(drop=True)
        problems: list = []
        parts = [self._encode_column(s, frame[s.column.name], problems) for s in self.segments]
        target = self.schema.target_column
        # The classes in declared order: a boolean target's are ("false", "true").
        as_classes = replace(target, type="categorical", categories=self.schema.classes)
        y_onehot = self._encode_column(Segment(as_classes, 0, len(self.schema.classes)),
                                       self._target_as_text(frame[target.name]), problems)
        if problems:
            raise DataError(_cells_message(source, problems))
        y = y_onehot.argmax(axis=1).astype(np.int64)
        x = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)
        return x.astype(np.float32), y

    def _target_as_text(self, series: pd.Series) -> pd.Series:
        if self.schema.target_column.type != "boolean":
            return series
        low = series.astype("string").str.strip().str.lower()
        return low.map(lambda v: "true" if v in TRUE else "false" if v in FALSE else v)

    def decode(self, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        """A DataFrame with the schema's columns, order, dtypes and categories."""
        data: dict[str, pd.Series] = {}
        for seg in self.segments:
            col = seg.column
            block = x[:, seg.start:seg.end]
            missing = block[:, -1] > 0.5 if col.nullable else np.zeros(len(x), bool)
            if col.numeric:
                bins, offset = bin_layout(col)
                if not bins:
                    values = from_unit(col, block[:, 0])
                elif not offset:
                    values = block[:, :bins].argmax(axis=1) + col.min
                else:
                    within = np.clip(block[:, bins], 0.0, 1.0)
                    values = from_unit(col, (block[:, :bins].argmax(axis=1) + within) / bins)
                if col.type == "integer":
                    s = pd.Series(np.round(values), dtype="Int64")
                else:
                    s = pd.Series(values, dtype="float64")
            elif col.type == "categorical":
                codes = block[:, : seg.width].argmax(axis=1)
                s = pd.Series(pd.Categorical.from_codes(codes, categories=list(col.categories)))
            else:
                s = pd.Series(block[:, 0] > 0.5, dtype="boolean")
            data[col.name] = s.mask(missing)
        target = self.schema.target_column
        if target.type == "boolean":
            data[target.name] = pd.Series(np.asarray(y) == 1, dtype="boolean")
        else:
            data[target.name] = pd.Series(
                pd.Categorical.from_codes(np.asarray(y), categories=list(target.categories))
            )
        return pd.DataFrame({c.name: data[c.name] for c in self.schema.columns})
