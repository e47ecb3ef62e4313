"""SDMetrics' QualityReport on a release: fresh rows score near 1, one repeated row lower."""

import numpy as np
import pandas as pd

from genai_models.schema import parse_schema
from genai_models.table_codec import TableCodec
from simulations.quality_report import sdmetrics_quality

SCHEMA = parse_schema({"target": "y", "columns": [
    {"name": "age", "type": "integer", "min": 0, "max": 90},
    {"name": "income", "type": "continuous", "min": 0, "max": 1e5, "nullable": True},
    {"name": "smoker", "type": "boolean"},
    {"name": "region", "type": "categorical", "categories": ["n", "s", "e"]},
    {"name": "y", "type": "categorical", "categories": ["a", "b"]},
]}, "q.toml")


def _frame(n: int, rng) -> pd.DataFrame:
    age = rng.integers(18, 80, n)
    income = np.where(rng.random(n) < 0.1, np.nan, age * 900 + rng.normal(0, 5e3, n)).clip(0)
    return pd.DataFrame({
        "age": age.astype(str), "income": [("" if np.isnan(v) else f"{v:.1f}") for v in income],
        "smoker": rng.choice(["yes", "no"], n), "region": rng.choice(["n", "s", "e"], n),
        "y": np.where(age > 50, "b", "a"),
    })


def test_quality_is_high_for_real_rows_and_low_for_a_collapsed_release():
    rng = np.random.default_rng(0)
    codec = TableCodec(SCHEMA)
    real = codec.decode(*codec.encode(_frame(400, rng), "real"))
    fresh = codec.decode(*codec.encode(_frame(400, rng), "fresh"))
    collapsed = codec.decode(*codec.encode(_frame(1, rng).iloc[[0] * 400], "one row"))
    good = sdmetrics_quality(fresh, real, SCHEMA)
    bad = sdmetrics_quality(collapsed, real, SCHEMA)
    assert good["quality"] > 0.9 and bad["quality"] < 0.6
    assert good["column_shapes"] > 0.9 and bad["column_shapes"] < good["column_shapes"]
    assert good["library"].startswith("sdmetrics 0.")
