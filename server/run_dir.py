"""Where a run writes: one rule for the CLI and the ServerApp."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def run_dir_for(run_dir: str, model: str, dataset: str) -> Path:
    """The run directory: as configured, or ``runs/<UTC timestamp>-<model>-<dataset>``."""
    if run_dir:
        return Path(run_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{model}-{dataset}"
