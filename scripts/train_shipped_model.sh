#!/usr/bin/env bash
# Trains the shipped model models/dpupose-synth/ from scratch on the synthetic data set, as its model card
# describes: 16 epochs at 160x160 input, then 4 epochs at 224x224 starting from those weights
# (fully convolutional, so the weights carry over). About 4-5 hours on 2 CPU cores.
# Resumable: run it again after an interruption and each stage continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
DPUPOSE=${DPUPOSE:-.venv/bin/dpupose}
RUNS=${RUNS:-runs}

stage() {  # stage OUT ARGS... : start, or resume if a run is there and unfinished
  local out=$1; shift
  if [ -f "$out/last.pt" ]; then
    "$DPUPOSE" train --out "$out" --resume "$@"
  else
    "$DPUPOSE" train --out "$out" "$@"
  fi
}

stage "$RUNS/synth-160" --data synthetic --epochs 16 --input-size 160 --batch-size 32 \
  --lr 1e-3 --schedule cosine --threads 2
stage "$RUNS/synth-224" --data synthetic --epochs 4 --input-size 224 --batch-size 32 \
  --lr 3e-4 --schedule cosine --threads 2 --init "$RUNS/synth-160/best.pt"
