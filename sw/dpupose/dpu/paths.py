"""Where the host tooling finds the repository's hw/ folder (board records, DPU configurations, the
performance model's tables, the Tcl scripts of the hardware build).

The package carries hw/ as ``dpupose/resources/hw``: in the checkout a link to the repository's hw/, in
a wheel a copy of it, so an installed wheel has the same tables as the checkout it was built from.
``DPUPOSE_HW_DIR`` overrides it (another hw/ folder, a test tree). The board runtime never needs hw/.
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
    (as the docs write it), else in the checkout this package was installed from. A wheel does not carry it
    (nor any checkout): then the relative path, which messages name as the docs do."""
    relative = Path("models") / "dpupose-synth" / "model.pt"
    checkout = repo_root() / relative
    return checkout if not relative.is_file() and checkout.is_file() else relative


def packaged_hw_dir() -> Path:
    """hw/ as the package carries it (resolved: in the checkout, the repository's hw/ itself)."""
    return Path(__file__).resolve().parents[1].joinpath("resources", "hw").resolve()


def hw_dir() -> Path:
    """The hw/ folder: $DPUPOSE_HW_DIR if set, else the package's. Raises ConfigError if it is missing."""
    override = os.environ.get(HW_DIR_ENV)
    path = Path(override) if override else packaged_hw_dir()
    if not (path / "dpu" / "configs").is_dir() or not (path / "boards").is_dir():
        if override:
            raise ConfigError(
                f"no hw/ folder with dpu/configs/ and boards/ at ${HW_DIR_ENV}={override}; set {HW_DIR_ENV} to "
                "a hw/ folder of the repository, or unset it to use the one dpupose carries"
            )
        raise ConfigError(
            f"dpupose's hw/ folder (DPU configurations, board records) is missing at {path}: reinstall dpupose, "
            f"or set {HW_DIR_ENV} to a hw/ folder of the repository"
        )
    return path


def shown(path: Path) -> str:
    """A file under the hw/ folder as a message names it: ``hw/...`` where it is the package's hw/ (the name the
    docs use), the whole path where $DPUPOSE_HW_DIR names another folder, so that the file named is the one read."""
    if os.environ.get(HW_DIR_ENV):
        return str(path)
    try:
        return str(Path("hw") / path.relative_to(packaged_hw_dir()))
    except ValueError:
        return str(path)


def board_file(board: str, name: str = "board.toml") -> str:
    """hw/boards/<board>/<name> (board.toml, platform.toml) as a message names it (`shown`)."""
    return shown(boards_dir() / board / name)


def configs_dir() -> Path:
    return hw_dir() / "dpu" / "configs"


def boards_dir() -> Path:
    return hw_dir() / "boards"
