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
# Since the sampling rate is public (one q for every owner, issue 10): q and the local
# learning rate, with the summed clipped gradients divided by the public batch size 64.
bench L5-public-q0.5-lr0.3 --sample-rate 0.5 --learning-rate 0.3
bench L6-public-q0.25-lr0.3 --sample-rate 0.25 --learning-rate 0.3
bench L7-public-q0.5-lr0.5 --sample-rate 0.5 --learning-rate 0.5
bench L8-public-q0.25-lr0.45 --sample-rate 0.25 --learning-rate 0.45
bench L9-public-q0.25-lr0.6 --sample-rate 0.25 --learning-rate 0.6
bench L10-public-q0.25-lr0.9 --sample-rate 0.25 --learning-rate 0.9
bench L11-public-q0.125-lr1.0 --sample-rate 0.125 --learning-rate 1.0
