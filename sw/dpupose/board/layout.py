"""Where dpupose's files live on the board. Staging (SD image) and deployment (ssh) use the same layout:

/home/xilinx/dpupose/
    overlay/dpu.bit, dpu.hwh, dpu.xclbin [, arch.json]   one stem, one folder: pynq_dpu 2.5.1 loads
                                                         dpu.bit, wants dpu.hwh beside it and points
                                                         VART at dpu.xclbin
    model/                the compiled model folder (split plan plan.json, .xmodel, .onnx subgraphs)
    wheels/dpupose-*.whl  this package; installed with its `board` extra
    board_setup.sh        installs pynq-dpu==2.5.1 and the wheel (scripts/board_setup.sh)
    manifest.json         SHA-256 of every file above (what `dpupose sdcard ls` checks)
    SHA256SUMS            the same in `sha256sum -c` form (checked on the board after a deploy)
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

BOARD_USER = "xilinx"  # PYNQ images: login xilinx/xilinx, uid/gid 1000
DEFAULT_UID = 1000
DEFAULT_GID = 1000
BOARD_ROOT = PurePosixPath("/home/xilinx/dpupose")
OVERLAY_DIR = BOARD_ROOT / "overlay"
MODEL_DIR = BOARD_ROOT / "model"
WHEEL_DIR = BOARD_ROOT / "wheels"
SETUP_SCRIPT = BOARD_ROOT / "board_setup.sh"
MANIFEST = BOARD_ROOT / "manifest.json"
SHA256SUMS = BOARD_ROOT / "SHA256SUMS"
FIRSTBOOT_SCRIPT = BOARD_ROOT / "firstboot.sh"
FIRSTBOOT_UNIT_NAME = "dpupose-firstboot.service"
FIRSTBOOT_UNIT = PurePosixPath("/etc/systemd/system") / FIRSTBOOT_UNIT_NAME
FIRSTBOOT_WANTS = PurePosixPath("/etc/systemd/system/multi-user.target.wants") / FIRSTBOOT_UNIT_NAME
FIRSTBOOT_LOG = PurePosixPath("/var/log/dpupose-firstboot.log")
# Where board_setup.sh delivers the notebook: $PYNQ_JUPYTER_NOTEBOOKS/dpupose on PYNQ 3.0.1 (Jupyter, port 9090).
NOTEBOOK = PurePosixPath("/home/xilinx/jupyter_notebooks/dpupose/pose_camera.ipynb")
# On the FAT boot partition (readable from any PC): a copy of the manifest and a short note.
BOOT_DIR = "dpupose"

OVERLAY_FILES = ("dpu.bit", "dpu.hwh", "dpu.xclbin")  # required, the names pynq_dpu 2.5.1 needs
OVERLAY_OPTIONAL = ("arch.json",)  # carries the DPU fingerprint
PLAN_FILE = "plan.json"  # the split plan inside the model folder; top-level "fingerprint"

PYNQ_DPU_VERSION = "2.5.1"
PYNQ_VENV_PROFILE = "/etc/profile.d/pynq_venv.sh"  # PYNQ 3.0: activates /usr/local/share/pynq-venv
# PYNQ 3.0: exports XILINX_XRT=/usr, without which pynq registers no device. Login shells source it; a
# command given to ssh and a systemd unit do not (PYNQ 3.0.1's sudo keeps the caller's environment as it is).
XRT_PROFILE = "/etc/profile.d/xrt_setup.sh"


def run_command(backend: str = "vart") -> str:
    """The command that runs the deployed model on the board (as root: the DPU needs it), in PYNQ's
    environment (XRT's and the Python venv's profile scripts, as PYNQ's own services source them).

    backend "vart" runs the DPU subgraphs on the DPU (the plan must record their compiled .xmodel files);
    "cpu" runs every subgraph with ONNX Runtime on the Cortex-A53, for a plan without them.
    """
    overlay = f" --overlay {OVERLAY_DIR}" if backend == "vart" else ""
    inner = (
        f"source {XRT_PROFILE} && source {PYNQ_VENV_PROFILE} && "
        f"dpupose run --backend {backend} --plan {MODEL_DIR}{overlay} "
        f"--source camera:0 --out {BOARD_ROOT / 'run'} --pipeline --drop-late"
    )
    return f"sudo bash -c {shlex.quote(inner)}"
