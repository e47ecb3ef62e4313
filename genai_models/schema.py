"""The public schema of a table: column types, bounds, categories and the target.

Pre-processing reads only the schema, never the private rows (invariant P5). A
schema is a TOML or JSON file with a ``target`` and a list of ``columns``, each
with ``name``, ``type`` (continuous, integer, categorical, boolean), ``min`` and
``max`` for numbers (and optional public encoding choices: ``scale``, linear or log
for a skewed number such as a price, and ``bins``, see :class:`Column`), ``categories``
for categoricals, and ``nullable``.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

TYPES = ("continuous", "integer", "categorical", "boolean")
SCALES = ("linear", "log")
MAX_BINS = 100
MISSING = {"", "na", "nan", "null", "none", "<na>"}
"""Cell texts read as a missing value (case-insensitive, after stripping)."""


class SchemaError(ValueError):
    """A malformed schema; the message names the file, the column and the key."""


@dataclass(frozen=True)
class Column:
    """One declared column."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    scale: str = "linear"
    """How a number maps onto [0, 1]: linear in its bounds, or log (log1p of the distance
    from min in units of ``log_offset``), which spreads a skewed number's crowded low values
    (declared, not learned)."""
    log_offset: float = 1.0
    """For ``scale = "log"``: the public unit of that distance, log(1 + (x - min) / offset).
    1 (the default) suits a price in pounds; a number measured in hundredths needs a
    hundredth, else its log scale is almost linear."""
    bins: int = 0
    """0: a number is one value in [0, 1]. Otherwise it is encoded as one of ``bins``
    equal-width bins of that scale (a categorical the models learn like any other) plus
    its offset within the bin: mode-specific normalisation with modes fixed by the schema
    instead of fitted to the rows. An integer with at most ``bins`` values is one-hot."""

    @property
    def numeric(self) -> bool:
        """Continuous or integer."""
        return self.type in ("continuous", "integer")


@dataclass(frozen=True)
class Schema:
    """The declared columns, in order, and the target column for TSTR."""

    columns: tuple[Column, ...]
    target: str
    source: str = "<schema>"
    bounds_source: str = "declared in the schema"

    @property
    def target_column(self) -> Column:
        """The target's declaration."""
        return next(c for c in self.columns if c.name == self.target)

    @property
    def classes(self) -> tuple[str, ...]:
        """The target's classes, in declared order."""
        t = self.target_column
        return ("false", "true") if t.type == "boolean" else t.categories

    @property
    def features(self) -> tuple[Column, ...]:
        """Every column but the target."""
        return tuple(c for c in self.columns if c.name != self.target)

    def to_dict(self) -> dict:
        """The TOML/JSON form."""
        cols = []
        for c in self.columns:
            d: dict = {"name": c.name, "type": c.type, "nullable": c.nullable}
            if c.numeric:
                d |= {"min": c.min, "max": c.max}
                if c.scale != "linear":
                    d["scale"] = c.scale
                if c.log_offset != 1.0:
                    d["log_offset"] = c.log_offset
                if c.bins:
                    d["bins"] = c.bins
            if c.type == "categorical":
                d["categories"] = list(c.categories)
            cols.append(d)
        return {"target": self.target, "bounds_source": self.bounds_source, "columns": cols}


def parse_schema(data: dict, source: str) -> Schema:
    """Validate a schema's dict form; errors name ``source``, the column and the key."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
        raise SchemaError(f"{source}: expected a 'columns' list of tables")
    columns, seen = [], set()
    for i, raw in enumerate(data["columns"]):
        where = f"{source}: columns[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise SchemaError(f"{where}: expected a table with a string 'name'")
        name = raw["name"]
        where = f"{source}: column {name!r}"
        if name in seen:
            raise SchemaError(f"{where}: declared twice")
        seen.add(name)
        unknown = set(raw) - {"name", "type", "min", "max", "categories", "nullable",
                                "scale", "log_offset", "bins"}
        if unknown:
            raise SchemaError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        kind = raw.get("type")
        if kind not in TYPES:
            raise SchemaError(f"{where}: type={kind!r}; allowed: {', '.join(TYPES)}")
        nullable = raw.get("nullable", False)
        if not isinstance(nullable, bool):
            raise SchemaError(f"{where}: nullable={nullable!r}; expected true or false")
        col = Column(name=name, type=kind, nullable=nullable)
        if kind in ("continuous", "integer"):
            lo, hi = raw.get("min"), raw.get("max")
            ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                     for v in (lo, hi))
            if not ok or not lo < hi:
                raise SchemaError(f"{where}: needs finite numbers min < max; got min={lo!r}, "
                                  f"max={hi!r}")
            scale = raw.get("scale", "linear")
            if scale not in SCALES:
                raise SchemaError(f"{where}: scale={scale!r}; allowed: {', '.join(SCALES)}")
            offset = raw.get("log_offset", 1.0)
            if scale != "log" and "log_offset" in raw:
                raise SchemaError(f"{where}: log_offset is for scale = \"log\" only")
            if (isinstance(offset, bool) or not isinstance(offset, int | float)
                    or not math.isfinite(offset) or offset <= 0):
                raise SchemaError(f"{where}: log_offset={offset!r}; allowed: a number > 0")
            bins = raw.get("bins", 0)
            if isinstance(bins, bool) or not isinstance(bins, int) or not (
                    bins == 0 or 2 <= bins <= MAX_BINS):
                raise SchemaError(f"{where}: bins={bins!r}; allowed: 0 (none) or an integer "
                                  f"from 2 to {MAX_BINS}")
            col = Column(name=name, type=kind, min=float(lo), max=float(hi), nullable=nullable,
                         scale=scale, log_offset=float(offset), bins=bins)
        elif {"scale", "log_offset", "bins"} & set(raw):
            raise SchemaError(f"{where}: scale, log_offset and bins are for continuous and "
                              f"integer columns only")
        elif kind == "categorical":
            cats = raw.get("categories")
            if (not isinstance(cats, list) or len(cats) < 2
                    or len({str(c) for c in cats}) != len(cats)):
                raise SchemaError(f"{where}: needs a list of at least two distinct categories")
            taken = [str(c) for c in cats if str(c).strip().lower() in MISSING
                     or str(c) != str(c).strip()]
            if taken:
                raise SchemaError(f"{where}: category {taken[0]!r} would be read as a missing "
                                  f"value or never match a cell (cells are stripped; "
                                  f"missing: {', '.join(repr(m) for m in sorted(MISSING))})")
            col = Column(name=name, type=kind, categories=tuple(str(c) for c in cats),
                         nullable=nullable)
        columns.append(col)
    target = data.get("target")
    if target not in seen:
        raise SchemaError(f"{source}: target={target!r} is not a declared column")
    bounds_source = str(data.get("bounds_source", "declared in the schema"))
    schema = Schema(tuple(columns), target, source, bounds_source)
    if schema.target_column.type not in ("categorical", "boolean"):
        raise SchemaError(f"{source}: target {target!r} must be categorical or boolean")
    if schema.target_column.nullable:
        raise SchemaError(f"{source}: target {target!r} cannot be nullable")
    if not schema.features:
        raise SchemaError(f"{source}: no feature columns besides the target")
    return schema


def load_schema(path: str | Path) -> Schema:
    """Read a schema from a TOML or JSON file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SchemaError(f"{path}: cannot read the schema ({err.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SchemaError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} "
                          f"({err})") from None
    return parse_schema(data, str(path))
