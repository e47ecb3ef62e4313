"""SDMetrics' QualityReport on a table release: the field's standard fidelity score.

Column shapes (one minus the KS statistic for numbers, one minus the total variation
distance for categories) and column pair trends (correlation and contingency
similarity), each 0 to 1 where 1 is the holdout itself, so a fedsynth release is scored
the way SDV and SmartNoise users score theirs (and as ``benchmarks/tables.sh`` scores
every system).
"""

from __future__ import annotations

import warnings
from importlib.metadata import version

import pandas as pd

from genai_models.schema import Schema


def plain_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Numbers as floats (NaN for missing), the rest as strings: as SDMetrics, Anonymeter read."""
    return pd.DataFrame({
        c.name: (frame[c.name].astype("Float64").astype(float) if c.numeric
                 else frame[c.name].astype("string").fillna("<missing>").astype(object))
        for c in schema.columns
    })


def sdmetrics_quality(synthetic: pd.DataFrame, real: pd.DataFrame, schema: Schema) -> dict:
    """SDMetrics' overall quality and its two properties, ``real`` as the reference."""
    from sdmetrics.reports.single_table import QualityReport

    metadata = {"columns": {c.name: {"sdtype": "numerical" if c.numeric else "categorical"}
                            for c in schema.columns}}
    report = QualityReport()
    with warnings.catch_warnings():  # the library's own deprecation notices
        warnings.simplefilter("ignore")
        report.generate(plain_frame(real, schema), plain_frame(synthetic, schema), metadata,
                        verbose=False)
        scores = report.get_properties().set_index("Property")["Score"]
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(scores["Column Shapes"]),
        "column_pair_trends": float(scores["Column Pair Trends"]),
        "library": f"sdmetrics {version('sdmetrics')}",
    }
