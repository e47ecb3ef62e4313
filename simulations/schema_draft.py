"""``fedsynth schema infer``: draft a schema from a CSV file, for a person to review.

The draft's bounds and categories are read from the file's own rows, so they
leak those rows (a minimum is a record's value). The command says so: publish a
schema deliberately, with bounds widened or taken from public documentation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genai_models.schema import Schema, parse_schema
from genai_models.table_codec import FALSE, MISSING, TRUE

MAX_CATEGORIES = 50
WARNING = (
    "warning: this draft's bounds and categories were read from the private rows of {path}; "
    "they leak those rows. Review them (widen bounds, use documented ranges) before "
    "publishing the schema."
)


def draft_schema(path: Path, target: str | None) -> Schema:
    """A schema whose types, bounds and categories are read from the file."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    target = target or frame.columns[-1]
    if target not in frame.columns:
        raise ValueError(f"--target: {target!r} is not a column of {path}; columns: "
                         f"{', '.join(frame.columns)}")
    columns = []
    for name in frame.columns:
        text = frame[name].str.strip()
        missing = text.str.lower().isin(MISSING)
        values = text[~missing]
        col: dict = {"name": name, "nullable": bool(missing.any())}
        numbers = pd.to_numeric(values, errors="coerce")
        lowered = set(values.str.lower())
        if len(values) and lowered <= (TRUE | FALSE) and len(lowered) == 2 and name != target:
            col["type"] = "boolean"
        elif len(values) and numbers.notna().all() and name != target:
            integral = (numbers == numbers.round()).all()
            col |= {"type": "integer" if integral else "continuous",
                    "min": float(numbers.min()), "max": float(numbers.max())}
            if col["min"] == col["max"]:
                col["max"] = col["min"] + 1.0
        else:
            cats = sorted(set(values))
            if len(cats) > MAX_CATEGORIES:
                raise ValueError(f"{path}: column {name!r} has {len(cats)} distinct non-numeric "
                                 f"values; a categorical column may have {MAX_CATEGORIES}")
            if len(cats) < 2:
                cats = [*cats, *(["other"] if cats else ["a", "b"])]
            col |= {"type": "categorical", "categories": cats}
        columns.append(col)
    return parse_schema({"target": target, "columns": columns,
                         "bounds_source": f"read from the rows of {path.name} (leaks them)"},
                        str(path))
