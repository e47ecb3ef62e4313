"""Re-release a finished GAN run with other generator-average windows, from its checkpoints.

Training does not depend on the window (the average is post-processing), so one run's
per-round checkpoints answer "what would another window have released": each window's
average is rebuilt with :class:`server.generator_average.GeneratorAverage`, sampled as the
run's release is (same seed, class shares and conditions) and scored as its report
scores a release (SDMetrics quality against the holdout for tables, logistic TSTR).
Nothing is written into the run. Window 0 is the last round's generator.

    python benchmarks/generator_average.py RUN_DIR [RUN_DIR ...] --windows 0,0.33
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.dataset import LabelledData, train_holdout  # noqa: E402
from genai_models import build_model, resolve  # noqa: E402
from privacy.experiment import ExperimentConfig  # noqa: E402
from privacy.ledger import read_ledger  # noqa: E402
from server.checkpoints import checkpoint_paths  # noqa: E402
from server.generator_average import GeneratorAverage  # noqa: E402
from server.release import (  # noqa: E402
    class_shares,
    condition_counts,
    release_images,
    release_table,
)
from simulations.quality_report import sdmetrics_quality  # noqa: E402
from simulations.utility import tstr_trtr  # noqa: E402


def rescore(run: Path, windows: list[float]) -> list[dict]:
    """One row per window: the release's SDMetrics quality (tables) and TSTR."""
    config = ExperimentConfig.parse(ExperimentConfig.read_toml(run / "config.toml"),
                                    str(run / "config.toml"))
    spec, codec = resolve(config.dataset, config.schema_path)
    train, holdout = train_holdout(config.dataset, config.holdout, config.seed,
                                   config.data_path, config.schema_path)
    checkpoints = [torch.load(p, weights_only=True) for p in checkpoint_paths(run)]
    rounds = [(c["round"], c["model"]) for c in checkpoints]
    entries = read_ledger(run / "ledger.jsonl")
    shares = class_shares(entries, spec.num_classes) if config.releases_counts else None
    counted = condition_counts(entries, config.conditions())
    rows = []
    for window in windows:
        model = build_model("gan", spec, hidden_dim=config.hidden_dim,
                            latent_dim=config.latent_dim)
        average = GeneratorAverage(model.generator, window, config.rounds)
        for server_round, weights in rounds[1:]:
            model.load_state_dict(weights)
            average.update(model.generator, server_round)
        model.generator.load_state_dict(average.weights())
        model.condition_on(counted["counts"] if counted else None)
        row = {"run": str(run), "window": window, "decay": round(average.decay, 4)}
        with tempfile.TemporaryDirectory() as scratch:  # the release as the run makes it
            if codec is None:
                x, y = release_images(model, spec, config.synthetic_samples, config.seed,
                                      Path(scratch), shares and shares["shares"])
                x = x / spec.value_max
            else:
                frame = release_table(model, codec, config.synthetic_samples, config.seed,
                                      Path(scratch), shares and shares["shares"])
                x, y = codec.encode(frame, "release")
                quality = sdmetrics_quality(frame, codec.decode(holdout.x, holdout.y),
                                            codec.schema)
                row |= {k: round(quality[k], 3)
                        for k in ("quality", "column_shapes", "column_pair_trends")}
        row["tstr_accuracy"] = round(tstr_trtr(LabelledData(x, y), train, holdout,
                                               config.seed)["tstr_accuracy"], 3)
        rows.append(row)
    return rows


def main() -> None:
    """Print one line per run and window."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--windows", default="0,0.33",
                        help="comma-separated generator-average windows (0: the last round's)")
    args = parser.parse_args()
    windows = [float(w) for w in args.windows.split(",")]
    for run in args.runs:
        for row in rescore(run, windows):
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
