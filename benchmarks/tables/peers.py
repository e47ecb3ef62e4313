"""Centralised DP peers on the same training rows (run in .venv-peers): SmartNoise MST, AIM.

They see every owner's rows in one place (the centralised trust model fedsynth avoids)
and are given the schema's public bounds, so they spend nothing on preprocessing.
Numbers are binned (20 bins within the declared bounds; integers one bin per value).

    python peers.py --real titanic.csv --schema titanic.toml --seed 0 --epsilon 8 \
        --synth mst --out mst.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from tables_common import TableSchema  # noqa: E402

BINS = 20


def main() -> None:
    """Fit one peer on the seed's training rows and write as many synthetic rows."""
    from snsynth import Synthesizer
    from snsynth.transform import BinTransformer, LabelTransformer, TableTransformer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--real", "--schema", "--synth", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, default=1e-5)
    args = parser.parse_args()
    schema = TableSchema.load(args.schema)
    train, _ = schema.split(schema.read(args.real), args.seed)
    np.random.seed(args.seed)
    transformers = []
    for name in train.columns:
        if name in schema.numeric:
            lo, hi, kind = schema.numeric[name]
            if kind == "integer" and hi - lo < BINS:
                transformers.append(BinTransformer(bins=int(hi - lo) + 1, lower=lo - 0.5,
                                                   upper=hi + 0.5))
            else:
                transformers.append(BinTransformer(bins=BINS, lower=lo, upper=hi))
        else:
            transformers.append(LabelTransformer(nullable=False))
    transformer = TableTransformer(transformers)
    synth = Synthesizer.create(args.synth, epsilon=args.epsilon, delta=args.delta,
                               verbose=False)
    synth.fit(train, transformer=transformer, preprocessor_eps=0.0)
    out = synth.sample(len(train))
    for name, (lo, hi, kind) in schema.numeric.items():
        if kind == "integer":
            out[name] = np.clip(np.round(out[name].astype(float)), lo, hi).astype(int)
    out.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
