#!/usr/bin/env bash
# Quantize the pose model with Xilinx vai_q_pytorch inside the Vitis AI 2.5 docker image, then compile it
# for one DPU configuration (its arch.json) with vai_c_xir. Hand-written, not generated.
#
#   scripts/vitis_ai_quantize.sh --checkpoint CKPT --arch ARCH_JSON --out DIR [--plan PLAN_DIR] \
#       [--calib-data synthetic|mpii] [--data-root DIR] [--num-calib N] [--target NAME] [--name NAME] [--dry-run]
#
# 1. host: `python -m dpupose.quant.vai_q prepare` writes DIR/staging/calib.npy, DIR/staging/model.pt
#    (calibration crops from this project's data sets, a plain state dict) and DIR/staging/dpu_part.json
#    (with the arch.json's fingerprint); with --plan (a `dpupose split` folder) the DPU part is cut where
#    the plan's DPU subgraph ends, and the arch.json must be for the plan's DPU configuration;
# 2. container (project at /workspace/dpupose read-only, DIR at /workspace/out, the arch.json folder at
#    /workspace/arch): `python -m dpupose.quant.vai_q run` (calib -> test -> export_xmodel, writes
#    DIR/DpuPart_int.xmodel), then `vai_c_xir -x DIR/DpuPart_int.xmodel -a arch.json -o DIR/compiled -n NAME`;
# 3. checks that DIR/compiled/NAME.xmodel exists and copies dpu_part.json beside it as NAME.dpupose.json
#    (what the xmodel computes; `dpupose split --xmodel` checks it against the split).
# Files of those names already in DIR are replaced without asking: give a new DIR or one this script wrote.
# Environment: VAI_DOCKER_IMAGE (default xilinx/vitis-ai-cpu:2.5), VAI_CONDA_ENV (default vitis-ai-pytorch),
# PYTHON (default: the project's .venv/bin/python, else python3).
set -euo pipefail

usage() { sed -n '5,6p' "$0" | sed 's/^# *//' >&2; exit 2; }
show_help() { sed -n '5,6p' "$0" | sed 's/^# *//'; exit 0; }
die() { echo "vitis_ai_quantize: error: $*" >&2; exit 2; }

repo="$(cd "$(dirname "$0")/.." && pwd)"
image="${VAI_DOCKER_IMAGE:-xilinx/vitis-ai-cpu:2.5}"
conda_env="${VAI_CONDA_ENV:-vitis-ai-pytorch}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
checkpoint="" arch="" out="" plan="" calib_data=synthetic data_root="" num_calib=100 target="" name=dpupose dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in  # an option that takes a value, given last without one
    --checkpoint|--arch|--out|--plan|--calib-data|--data-root|--num-calib|--target|--name)
      [ $# -ge 2 ] || die "$1 needs a value (see --help)" ;;
  esac
  case "$1" in
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --plan) plan="$2"; shift 2 ;;
    --calib-data) calib_data="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --num-calib) num_calib="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) show_help ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
missing=()  # named, then the usage: the usage alone did not say which of them the command line lacked
[ -n "$checkpoint" ] || missing+=(--checkpoint)
[ -n "$arch" ] || missing+=(--arch)
[ -n "$out" ] || missing+=(--out)
if [ ${#missing[@]} -gt 0 ]; then
  list=$(IFS=,; echo "${missing[*]}")
  echo "vitis_ai_quantize: error: missing ${list//,/, }: --checkpoint, --arch and --out are required" >&2
  usage
fi
[ ! -d "$checkpoint" ] || die "checkpoint $checkpoint is a folder; give a checkpoint file (e.g. runs/NAME/best.pt)"
[ -f "$checkpoint" ] || die "checkpoint $checkpoint not found"
[ -z "$plan" ] || [ -f "$plan/plan.json" ] || [ -f "$plan" ] || die "--plan $plan holds no plan.json (give the folder \`dpupose split\` wrote)"
[ ! -d "$arch" ] || die "--arch $arch is a folder; give the arch.json file in it ($arch/arch.json)"
[ -f "$arch" ] || die "arch.json $arch not found (make hw writes one per DPU configuration)"
case "$image" in
  *:2.5|*:2.5.*) ;;
  *) echo "vitis_ai_quantize: warning: VAI_DOCKER_IMAGE $image is not tagged 2.5: the board runs DPU-PYNQ 2.5.1's VART 2.5, which needs an xmodel from Vitis AI 2.5, and dpupose reads target names with 2.5's fingerprints (docs/quantization.md)" >&2 ;;
esac
if [ "$dry_run" = 0 ]; then
  command -v docker >/dev/null 2>&1 || die "docker not found on PATH; install Docker and pull $image"
fi

# DIR is made by the host step (DIR/staging), once it has checked the checkpoint, --arch and --plan: a refused
# run leaves no DIR behind; --dry-run writes nothing.
out="$(realpath -m "$out")"
arch_dir="$(cd "$(dirname "$arch")" && pwd)"
arch_name="$(basename "$arch")"

prepare=("$python" -m dpupose.quant.vai_q prepare --checkpoint "$checkpoint" --work "$out/staging"
         --calib-data "$calib_data" --num-calib "$num_calib" --arch "$arch")
[ -n "$data_root" ] && prepare+=(--data-root "$data_root")
[ -n "$plan" ] && prepare+=(--plan "$plan")

run_args="--work /workspace/out/staging --out /workspace/out"
[ -n "$target" ] && run_args="$run_args --target $target"
inner="source /opt/vitis_ai/conda/etc/profile.d/conda.sh && conda activate $conda_env \
&& export PYTHONPATH=/workspace/dpupose/sw PYTHONDONTWRITEBYTECODE=1 \
&& python -m dpupose.quant.vai_q run $run_args \
&& vai_c_xir -x /workspace/out/DpuPart_int.xmodel -a /workspace/arch/$arch_name -o /workspace/out/compiled -n $name"
docker_cmd=(docker run --rm --network=none -u "$(id -u):$(id -g)" -e HOME=/tmp
            -v "$repo:/workspace/dpupose:ro" -v "$out:/workspace/out" -v "$arch_dir:/workspace/arch:ro"
            -w /workspace/dpupose "$image" bash -c "$inner")

if [ "$dry_run" = 1 ]; then
  printf 'PYTHONPATH=%q ' "$repo/sw"; printf '%q ' "${prepare[@]}"; echo
  printf '%q ' "${docker_cmd[@]}"; echo
  exit 0
fi
PYTHONPATH="$repo/sw${PYTHONPATH:+:$PYTHONPATH}" "${prepare[@]}"
"${docker_cmd[@]}"
[ -f "$out/compiled/$name.xmodel" ] || die "vai_c_xir wrote no $out/compiled/$name.xmodel; see the log above"
cp "$out/staging/dpu_part.json" "$out/compiled/$name.dpupose.json"
echo "compiled model: $out/compiled/$name.xmodel"
