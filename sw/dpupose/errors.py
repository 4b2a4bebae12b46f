"""Exception types. Every error a user can cause derives from DpuposeError; the CLI prints its
message on one line and exits non-zero, so each message must say what went wrong and what to do."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

SHOWN = 4  # names a message lists before "and N more"


def shortlist(names: Sequence[str], limit: int = SHOWN) -> str:
    """`names` as a message lists them: the first `limit` joined with ", ", then "and N more" for the rest
    ("a, b, c, d and 2 more"); "" for none. The messages that name what is in the way (a user's files in an
    output folder, a folder's subfolders) all say it this way, with the same number shown."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def size_not_fixed(where: str, name: str, shape: Sequence[object], symbols: Sequence[object], who: str = "") -> str:
    """The refusal of an image input whose size past the batch is symbolic (or 0), as torch.onnx.export's
    dynamic_axes for a height, width or channel count writes it: `where` ('FILE: ', or '') leads, then the input,
    its sizes and those axes, and the export to make; `who` (the emulator, deploy-check) is named beside the DPU.
    One wording for `dpu estimate`, `split` (dpu.graph.check_fixed_input) and the emulator's runners
    (runtime.emulator.check_fixed_sizes)."""
    runs = f"the DPU, and {who}, run" if who else "the DPU runs"
    return (
        f"{where}input {name!r} {tuple(shape)} has a size that is not fixed ({', '.join(map(str, symbols))}): {runs} "
        "fixed sizes only (the batch alone may be symbolic); export the model with the size the DPU will run "
        f"(torch.onnx.export's dynamic_axes for the batch alone: {{{name!r}: {{0: 'batch'}}}})"
    )


class DpuposeError(Exception):
    """Base class of errors reported to the user without a traceback."""

    def _render_traceback_(self) -> list[str]:
        """What IPython (Jupyter, the board notebook) shows for the error instead of its traceback: its
        hook for exceptions that render themselves. The message on one line, as the CLI prints it."""
        return [f"{type(self).__name__}: {self}"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a service stop): raised where the program is, like Ctrl-C, so that
    partial files are cleaned up and `dpupose run` finishes its outputs before exiting (143)."""


class UsageError(DpuposeError):
    """A command-line value is wrong or missing."""


class ConfigError(DpuposeError):
    """A DPU or board configuration is unknown, malformed or illegal."""


class DataError(DpuposeError):
    """A data set, annotation record or image is missing or malformed."""


class EmptySplitError(DataError):
    """A data root has no records for one split (no annotation file for it, or an empty one)."""


class CheckpointError(DpuposeError):
    """A checkpoint is truncated, foreign or does not match the model."""


class ModelFileError(DpuposeError):
    """An ONNX / xmodel / plan file is missing, corrupt or of the wrong kind."""


class QuantizationError(DpuposeError):
    """Calibration or quantization cannot produce a valid INT8 model."""


class FingerprintMismatch(DpuposeError):
    """A plan, xmodel or overlay was made for another DPU configuration."""


class ToolNotFoundError(DpuposeError):
    """An external tool (Vivado, v++, docker, mtools...) is not installed or not on PATH."""


class ToolFailed(DpuposeError):
    """An external tool exited non-zero; the message carries the end of its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        # Colour and cursor codes (bmaptool colours its errors) would garble the one-line message.
        detail = [line for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr).strip().splitlines() if line.strip()]
        tail = "; ".join(detail[-3:]) if detail else "no message"
        super().__init__(f"'{shlex.join(self.argv)}' failed (exit {returncode}): {tail}")


class ArtifactError(DpuposeError):
    """A tool ran but an expected output file is missing or wrong."""


class DeviceError(DpuposeError):
    """A target device (SD card, camera, board) is unsafe, missing or unusable."""


class ImageError(DpuposeError):
    """An SD card image is missing, truncated, corrupt, of an unsupported kind or has no room left."""
