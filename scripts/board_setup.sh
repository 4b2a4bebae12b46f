#!/usr/bin/env bash
# Set up dpupose on an Ultra96-V2 running PYNQ 3.0.1: install pynq-dpu 2.5.1 and the dpupose wheel
# (with its `board` extra) into PYNQ's Python environment, and put the board notebook into Jupyter's
# folder. Needs network (pip fetches pynq-dpu, VART and onnxruntime). Idempotent: what is already
# installed at the right version is left alone, the dpupose wheel is reinstalled only when it differs
# from the installed one, and a notebook already delivered is kept.
#
#   sudo bash board_setup.sh [WHEEL]
#
# WHEEL defaults to the newest wheels/dpupose-*.whl beside this script (where `dpupose deploy` and
# `dpupose sdcard stage` put it: /home/xilinx/dpupose).
set -euo pipefail

PYNQ_DPU_VERSION=2.5.1
# The locations below are PYNQ 3.0's; the environment may override them (the tests do).
PYNQ_VENV_PROFILE=${PYNQ_VENV_PROFILE:-/etc/profile.d/pynq_venv.sh}
XRT_PROFILE=${XRT_PROFILE:-/etc/profile.d/xrt_setup.sh}
ENVIRONMENT_FILE=${DPUPOSE_ENVIRONMENT_FILE:-/etc/environment}  # PYNQ_JUPYTER_NOTEBOOKS is set there
STAMP_DIR=${DPUPOSE_STAMP_DIR:-/var/lib/dpupose}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "board_setup.sh: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root: sudo bash $0 $*"
[ -f "$PYNQ_VENV_PROFILE" ] || die "$PYNQ_VENV_PROFILE not found: this is not a PYNQ 3.x image"

wheel=${1:-}
if [ -z "$wheel" ]; then
  wheel=$(ls -1 "$HERE"/wheels/dpupose-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$wheel" ] || die "no wheel given and none in $HERE/wheels: copy dpupose-*.whl there or pass its path"
fi
[ -f "$wheel" ] || die "wheel $wheel not found"

# PYNQ's environment scripts are not written for `set -u`.
set +u
# shellcheck disable=SC1090
source "$PYNQ_VENV_PROFILE"
# shellcheck disable=SC1090
[ -f "$XRT_PROFILE" ] && source "$XRT_PROFILE"
set -u

python3 - <<'EOF' || die "cannot reach pypi.org: connect the board to a network with internet access"
import socket
socket.create_connection(("pypi.org", 443), timeout=10).close()
EOF

# pynq-dpu 2.5.1 is a source package: building it on the board downloads the Vitis AI runtime (VART's .deb
# packages) from www.xilinx.com and installs them with apt-get, and its setup.py ignores that step's exit status,
# so pip reports pynq-dpu installed where VART is not (no route to xilinx.com, apt busy). pip also keeps the
# wheel it built, and installing that again skips the build: a repair reinstalls without pip's cache.
vart_importable() {  # where VART's Python modules are (pynq_dpu adds the folder to sys.path itself)
  python3 -c 'import sys; sys.path.append("/usr/lib/python3/site-packages"); import vart, xir' >/dev/null 2>&1
}
installed=$(pip3 show pynq-dpu 2>/dev/null | sed -n 's/^Version: //p' || true)  # not installed: empty
if [ "$installed" = "$PYNQ_DPU_VERSION" ] && vart_importable; then
  echo "pynq-dpu $PYNQ_DPU_VERSION already installed"
else
  if [ "$installed" = "$PYNQ_DPU_VERSION" ]; then
    echo "pynq-dpu $PYNQ_DPU_VERSION is installed but VART is not: installing it again (its build installs VART)"
    pip3 install --no-build-isolation --no-cache-dir --force-reinstall --no-deps "pynq-dpu==$PYNQ_DPU_VERSION"
  else
    echo "installing pynq-dpu $PYNQ_DPU_VERSION (several minutes on the Cortex-A53)"
    pip3 install --no-build-isolation --no-cache-dir "pynq-dpu==$PYNQ_DPU_VERSION"
  fi
  vart_importable || die "pynq-dpu $PYNQ_DPU_VERSION is installed but VART (import vart, xir) is not: building \
pynq-dpu downloads the Vitis AI runtime from www.xilinx.com and installs it with apt-get, and goes on when that \
fails; check that www.xilinx.com can be reached and that no other apt-get is running, then run this script again"
fi

mkdir -p "$STAMP_DIR"
wheel_sum=$(sha256sum "$wheel" | cut -d' ' -f1)
if [ -f "$STAMP_DIR/wheel.sha256" ] && [ "$(cat "$STAMP_DIR/wheel.sha256")" = "$wheel_sum" ] \
    && pip3 show dpupose >/dev/null 2>&1; then
  echo "dpupose wheel $(basename "$wheel") already installed"
else
  echo "installing $(basename "$wheel") with the board extra"
  pip3 install "${wheel}[board]"
  # Same version number, new build: replace the package files too.
  pip3 install --no-deps --force-reinstall "$wheel"
  echo "$wheel_sum" > "$STAMP_DIR/wheel.sha256"
fi

# A wheel built for newer Arm cores dies on import with "Illegal instruction" on the A53 (onnxruntime 1.21
# did; the board extra skips it): say so here, not at the first `dpupose run`.
if ! python3 -c 'import onnxruntime' >/dev/null 2>&1; then
  ort=$(pip3 show onnxruntime 2>/dev/null | sed -n 's/^Version: //p' || true)
  die "onnxruntime ${ort:-(not installed)} does not load on this board (check: python3 -c 'import onnxruntime'; \
\"Illegal instruction\" means a build for newer Arm cores): install another in PYNQ's environment, \
e.g. sudo -i pip3 install onnxruntime==1.20.1, then run this script again"
fi
python3 -c 'import dpupose, pynq_dpu; print("dpupose", dpupose.__version__, "and pynq_dpu are importable")'

# The board notebook into Jupyter's folder, as PYNQ delivers notebooks (`pynq get-notebooks`, the package's
# pynq.notebooks entry point): $PYNQ_JUPYTER_NOTEBOOKS/dpupose/pose_camera.ipynb, owned as that folder is
# (the image gives it to xilinx), and so is PYNQ's list of what it delivered there (.pynq-notebooks), which
# root would own when this creates it: the user's own `pynq get-notebooks` could not update it. PYNQ sets
# the variable in /etc/environment, which a login or sudo reads but the first-boot unit does not. Once: a
# copy already there (perhaps edited) is kept. Not delivered is no reason to fail the setup (`dpupose run`
# works).
notebooks=${PYNQ_JUPYTER_NOTEBOOKS:-}
if [ -z "$notebooks" ] && [ -f "$ENVIRONMENT_FILE" ]; then
  notebooks=$(sed -n 's/^PYNQ_JUPYTER_NOTEBOOKS=//p' "$ENVIRONMENT_FILE" | tail -n 1 | tr -d "\"'")
fi
if [ -z "$notebooks" ] || [ ! -d "$notebooks" ]; then
  echo "no Jupyter notebooks folder (PYNQ_JUPYTER_NOTEBOOKS is '$notebooks'): the notebook is not delivered"
elif [ -e "$notebooks/dpupose/pose_camera.ipynb" ]; then
  echo "notebook $notebooks/dpupose/pose_camera.ipynb kept (a newer one: cd $notebooks && pynq get-notebooks dpupose -p . -f)"
elif (cd "$notebooks" && pynq get-notebooks dpupose -p . -f) && [ -e "$notebooks/dpupose/pose_camera.ipynb" ]; then
  chown -R --reference="$notebooks" "$notebooks/dpupose" || true
  if [ -f "$notebooks/.pynq-notebooks" ]; then chown --reference="$notebooks" "$notebooks/.pynq-notebooks" || true; fi
  echo "notebook delivered: $notebooks/dpupose/pose_camera.ipynb (Jupyter, port 9090)"
else
  echo "board_setup.sh: warning: the notebook could not be delivered; dpupose itself is installed" \
    "(by hand: cd $notebooks && pynq get-notebooks dpupose -p . -f)" >&2
fi
