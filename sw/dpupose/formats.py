"""Format markers of the files dpupose writes and reads back ("NAME/N": an image's manifest, a quantize
summary), and how one that a newer dpupose wrote is told from a damaged one (board-safe, standard library
only)."""

from __future__ import annotations

import re

from dpupose import __version__
from dpupose.fsio import loads_json


def newer_format(value: object, ours: str) -> bool:
    """Whether `value` is the marker `ours` ("NAME/N") with a higher N: a file a newer dpupose wrote, to be
    refused as such (naming the version that reads it), not as a damaged one."""
    name, _, number = ours.rpartition("/")
    found = re.fullmatch(re.escape(name) + r"/([0-9]+)", value) if isinstance(value, str) else None
    return found is not None and int(found.group(1)) > int(number)


def newer_format_refusal(what: str, value: str, ours: str, by: str = "a newer dpupose") -> str:
    """The start of the refusal of a file a newer dpupose wrote (newer_format): `what` (the file, as the user
    knows it) is format `value`, written by `by`; this dpupose reads `ours`, the whole marker. The caller adds
    what to do."""
    return f"{what} is format {value}, written by {by}; this dpupose ({__version__}) reads {ours}"


# Why a file onnx cannot load is not an ONNX model, in a user's words (protobuf's exception types, DecodeError
# and others, name nothing the user did).
NOT_PARSED = "it does not parse as one: damaged, or another kind of file"


def not_onnx(path: object) -> str | None:
    """What a file given where an ONNX model is wanted is instead, when that can be told from its bytes:
    "checkpoint" (a PyTorch checkpoint: torch.save's zip, which holds a data.pkl, or its older pickle),
    "plan" (a split plan's plan.json), else None. Only read after the file failed to load as ONNX."""
    import zipfile
    from pathlib import Path

    path = Path(str(path))
    try:
        with path.open("rb") as f:
            head = f.read(2)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist()):
                    return "checkpoint"
            return None
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle (torch.save before 1.6)
            return "checkpoint"
        if head[:1] == b"{" and path.stat().st_size < 64 * 1024 * 1024:
            doc = loads_json(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and "subgraphs" in doc and "fingerprint" in doc:
                return "plan"
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return None


def onnx_in_folder(path: object, whole: bool) -> str | None:
    """What to give for a dpupose output folder given where an ONNX model is wanted, or None for another folder:
    a `dpupose quantize` folder's model_qdq.onnx (`whole`: split's MODEL, a whole model) or its files by part,
    a split plan folder's subgraph files (or, `whole`, the model it was split from), a training run's or model
    card's checkpoint (quantize it first)."""
    from pathlib import Path

    path = Path(str(path))
    try:
        if (path / "plan.json").is_file():
            if whole:
                return "a split plan folder, split already: split the model_qdq.onnx written by `dpupose quantize`"
            files = sorted(p.name for p in path.glob("dpu*.onnx"))
            named = f" ({', '.join(str(path / f) for f in files)})" if files else ""
            return f"a split plan folder: give one of its DPU subgraph files{named}"
        if (path / "model_qdq.onnx").is_file() and (path / "summary.json").is_file():
            if whole:
                return f"a `dpupose quantize` folder: give its {path / 'model_qdq.onnx'}"
            return (
                f"a `dpupose quantize` folder: give one of its models, {path / 'model_fp32.onnx'} (the whole model, "
                f"float) or {path / 'dpu_part_qdq.onnx'} (the DPU part, quantized)"
            )
        ckpt = next((path / f for f in ("best.pt", "model.pt", "last.pt") if (path / f).is_file()), None)
    except OSError:
        return None
    if ckpt is None:
        return None
    then = "and split DIR/model_qdq.onnx" if whole else "which writes DIR/model_fp32.onnx and DIR/model_qdq.onnx"
    return (
        f"a folder holding a checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint {ckpt} --out "
        f"DIR`, {then}"
    )
