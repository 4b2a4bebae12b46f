#!/usr/bin/env bash
# Trains the shipped model models/dpupose-synth/ from scratch on the synthetic data set, as its model card
# describes, in eight stages that each start from the previous stage's best weights (the network is fully
# convolutional, so weights carry over between input sizes; small inputs make the early epochs cheap):
#   1. 128x128 input,  8 epochs, Adam, cosine learning rate from 1e-3
#   2. 160x160 input, 11 epochs, cosine from 1e-3 again (a warm restart)
#   3. 160x160 input, 10 epochs, cosine from 5e-4 (a second, gentler warm restart)
#   4. 224x224 input,  1 epoch,  cosine from 2e-4 (adapts to the deployed input size)
#   5. 224x224 input,  6 epochs, cosine from 3e-4 (a third warm restart, at the deployed size)
#   6. 224x224 input,  8 epochs, cosine from 3e-4 (a fourth warm restart)
#   7. 224x224 input,  8 epochs, cosine from 2e-4 (a fifth, gentler warm restart)
#   8. 224x224 input,  8 epochs, cosine from 2e-4 (a sixth warm restart)
# then writes the last stage's best weights (no optimizer state) to models/dpupose-synth/model.pt, and
# quantizes them for the DPU and splits them for the default Ultra96-V2 configuration into
# models/dpupose-synth/split/ (a plan that `dpupose run --plan` takes as it is).
# About 11 hours on 2 CPU cores. Resumable: run it again after an interruption and each stage continues
# where it stopped (finished stages are skipped).
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

common=(--data synthetic --batch-size 32 --schedule cosine --threads 2)
stage "$RUNS/synth-128" "${common[@]}" --input-size 128 --epochs 8 --lr 1e-3
stage "$RUNS/synth-160" "${common[@]}" --input-size 160 --epochs 11 --lr 1e-3 --init "$RUNS/synth-128/best.pt"
stage "$RUNS/synth-160b" "${common[@]}" --input-size 160 --epochs 10 --lr 5e-4 --init "$RUNS/synth-160/best.pt"
stage "$RUNS/synth-224" "${common[@]}" --input-size 224 --epochs 1 --lr 2e-4 --init "$RUNS/synth-160b/best.pt"
stage "$RUNS/synth-224c" "${common[@]}" --input-size 224 --epochs 6 --lr 3e-4 --init "$RUNS/synth-224/best.pt"
stage "$RUNS/synth-224d" "${common[@]}" --input-size 224 --epochs 8 --lr 3e-4 --init "$RUNS/synth-224c/best.pt"
stage "$RUNS/synth-224e" "${common[@]}" --input-size 224 --epochs 8 --lr 2e-4 --init "$RUNS/synth-224d/best.pt"
stage "$RUNS/synth-224f" "${common[@]}" --input-size 224 --epochs 8 --lr 2e-4 --init "$RUNS/synth-224e/best.pt"
# The shipped file: the last stage's best weights without optimizer state.
"$DPUPOSE" export --checkpoint "$RUNS/synth-224f/best.pt" --out models/dpupose-synth/model.pt --force
# The shipped split plan: the weights in INT8 (calibrated on the default 100 synthetic training scenes),
# cut where the DPU and the Cortex-A53 together are predicted to be fastest.
"$DPUPOSE" quantize --checkpoint models/dpupose-synth/model.pt --out build/quantized/dpupose-synth
"$DPUPOSE" split build/quantized/dpupose-synth/model_qdq.onnx --out models/dpupose-synth/split --optimize
