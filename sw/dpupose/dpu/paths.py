"""Where the host tooling finds the repository's hw/ folder (board records, DPU configurations).

Host tools read hw/ from the repository checkout: the package is installed editable from the repository
root, so ``sw/dpupose/dpu/paths.py`` -> ``parents[3]`` is that root. ``DPUPOSE_HW_DIR`` overrides it
(for an installed wheel or a test tree). The board runtime never needs hw/.
"""

from __future__ import annotations

import os
from pathlib import Path

from dpupose.errors import ConfigError

HW_DIR_ENV = "DPUPOSE_HW_DIR"


def repo_root() -> Path:
    """The repository checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[3]


def shipped_model() -> Path:
    """The shipped default model, models/dpupose-synth/model.pt: relative when run from the checkout's root
    (as the docs write it), else in the checkout this package was installed from."""
    relative = Path("models") / "dpupose-synth" / "model.pt"
    return relative if relative.is_file() else repo_root() / relative


def hw_dir() -> Path:
    """The hw/ folder: $DPUPOSE_HW_DIR if set, else <repo>/hw. Raises ConfigError if it is missing."""
    override = os.environ.get(HW_DIR_ENV)
    path = Path(override) if override else repo_root() / "hw"
    if not (path / "dpu" / "configs").is_dir() or not (path / "boards").is_dir():
        where = f"${HW_DIR_ENV}={override}" if override else str(path)
        raise ConfigError(
            f"no hw/ folder with dpu/configs/ and boards/ at {where}; run from a checkout of the "
            f"repository (pip install -e .) or set {HW_DIR_ENV} to its hw/ folder"
        )
    return path


def configs_dir() -> Path:
    return hw_dir() / "dpu" / "configs"


def boards_dir() -> Path:
    return hw_dir() / "boards"
