#!/usr/bin/env bash
# Trains the shipped model models/dpupose-synth/ from scratch on the synthetic data set, as its model card
# describes: 8 epochs at 128x128 input (cosine learning rate from 1e-3), then 1 epoch at 224x224 at a low
# constant learning rate, starting from those weights (the network is fully convolutional, so they carry
# over; the short second stage adapts it to the larger scale). A few hours on 2 CPU cores.
# Resumable: run it again after an interruption and each stage continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
DPUPOSE=${DPUPOSE:-.venv/bin/dpupose}
RUNS=${RUNS:-runs}

stage() {  # stage OUT ARGS... : start, or resume if a run is there
  local out=$1; shift
  if [ -f "$out/last.pt" ]; then
    "$DPUPOSE" train --out "$out" --resume "$@"
  else
    "$DPUPOSE" train --out "$out" "$@"
  fi
}

stage "$RUNS/synth-128" --data synthetic --epochs 8 --input-size 128 --batch-size 32 \
  --lr 1e-3 --schedule cosine --threads 2
stage "$RUNS/synth-224" --data synthetic --epochs 1 --input-size 224 --batch-size 32 \
  --lr 2e-4 --threads 2 --init "$RUNS/synth-128/best.pt"
