#!/usr/bin/env bash
# The utility-gap lever sweep (issue: federated DP utility gap), eps = 8, 3 seeds each.
# Every cell is a real `fedsynth simulate` run; results are printed as markdown tables.
#   bash benchmarks/levers.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/levers}
py=${PYTHON:-.venv/bin/python}
bench() { name=$1; shift; echo "### $name"; "$py" benchmarks/default_run.py --epsilons 8 --out "$out/$name" -- "$@"; }
bench L0-naive --optimizer adam --learning-rate 0.002 --hidden-dim 128 --latent-dim 8 --server-momentum 0
bench L1-sgd --hidden-dim 128 --latent-dim 8 --server-momentum 0
bench L2-sgd-fedavgm --hidden-dim 128 --latent-dim 8
bench L3-default-small-model
bench L4-default-prv --accountant prv
