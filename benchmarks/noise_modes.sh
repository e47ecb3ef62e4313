#!/usr/bin/env bash
# Local against distributed noise (issue 14): digits, 10 owners, Dirichlet(1.0), 3 seeds,
# every cell a real `fedsynth simulate` run (Flower Simulation Engine, Opacus, SecAgg+),
# every private run audited. About 45 minutes on 2 cores. Results: benchmarks/RESULTS.md.
#   bash benchmarks/noise_modes.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/noise-modes}
py=${PYTHON:-.venv/bin/python}
bench() { name=$1; eps=$2; shift 2; echo "### $name"
  "$py" benchmarks/default_run.py --epsilons "$eps" --seeds 0,1,2 --out "$out/$name" -- "$@"; }
bench local 8,2,1
# One DP-SGD step a round, each owner adding its share; q 0.5 so that an owner's expected
# batch (~63 records) matches the public divisor 64.
bench distributed 8,2,1 --noise distributed --rounds 150 --sample-rate 0.5
bench distributed-short 1 --noise distributed --rounds 50 --sample-rate 0.5 --learning-rate 1.0
bench local-nodp inf
# Probes that met the two targets the table above missed (2026-11-29, second session):
bench distributed-small 1 --noise distributed --rounds 25 --sample-rate 0.5 --hidden-dim 32
bench local-nodp-3epochs inf --local-epochs 3
# The DP GAN under distributed noise (2026-11-29, third session): owners share the
# discriminator's real-record gradient; the coordinator trains the generator.
bench gan-distributed 8 --model gan --noise distributed --optimizer adam \
  --learning-rate 0.002 --rounds 300 --sample-rate 0.5 --hidden-dim 128 --latent-dim 32
