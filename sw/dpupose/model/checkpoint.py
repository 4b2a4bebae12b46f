"""Checkpoints: atomic save, defensive load (host only).

A checkpoint is a torch.save dict: `format` ("dpupose-checkpoint"), `model` (PoseNet state_dict),
`model_config` (ModelConfig fields), `epoch`, and for training runs `optimizer`, `scheduler`, `history`,
`best_val_loss`, `args`. The shipped model holds the first three plus its metrics.

Checkpoints are device-neutral: tensors are saved from the CPU (a run on a GPU writes CPU copies) and read
onto the CPU, so one trained on a GPU loads on a machine without one, and quantize/export/split read it.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import torch

from dpupose import __version__
from dpupose.errors import CheckpointError, shortlist
from dpupose.fsio import atomic_path, not_a_file
from dpupose.model.pose import ModelConfig, PoseNet

FORMAT = "dpupose-checkpoint"
# What writes a checkpoint of dpupose's own network, as every refusal of one says.
WRITTEN_BY = "written by `dpupose train` or `dpupose export`"
OWN_MODEL = (
    "a network of your own goes to `dpupose split` as power-of-two QDQ ONNX (docs/split.md#a-model-of-your-own), "
    "and `dpupose dpu estimate` predicts its DPU time from any ONNX export"
)


def on_cpu(value: Any) -> Any:
    """`value` with every tensor in it (in dicts, lists, tuples) on the CPU. What is there already is
    returned as it is (the same objects: a run on the CPU saves exactly what it holds); a container with a
    tensor elsewhere (model and optimizer state trained on a GPU) is copied with CPU copies of those, a
    state_dict keeping its class and its `_metadata`."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        moved = {k: on_cpu(v) for k, v in value.items()}
        if all(moved[k] is v for k, v in value.items()):
            return value
        out = copy.copy(value)
        out.update(moved)
        return out
    if isinstance(value, list | tuple):
        items = [on_cpu(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically (temp file in the same folder, then rename), its tensors from
    the CPU whatever device they were on."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # atomic_path syncs it before the rename
        try:
            torch.save({"format": FORMAT, **on_cpu(state)}, f)
        except RuntimeError as exc:
            # A failed write (a full disk) reaches torch's zip writer, which raises its own RuntimeError
            # ('unexpected pos ...') from it: the write's OSError says what happened (atomic_path names it).
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise cause from None
            raise
    return path


# The checkpoint a folder given in its place holds, in the order named: a training run's best, a model card's
# (dpupose export's --out), a run stopped before its first validation.
FOLDER_CHECKPOINTS = ("best.pt", "model.pt", "last.pt")


def check_checkpoint_path(path: str | Path, name: str = "checkpoint") -> Path:
    """CheckpointError for a path that cannot be a checkpoint by what it is, without reading it: a folder
    (naming the checkpoint file in it when it holds one), nothing, an ONNX file; else the path. `name` is
    what the path is called in the message: 'checkpoint', or the option that gave it (`--model`)."""
    path = Path(path)
    if path.is_dir():
        inside = next((path / f for f in FOLDER_CHECKPOINTS if (path / f).is_file()), None)
        hint = f"the checkpoint file in it ({inside})" if inside else "a checkpoint file (e.g. runs/NAME/best.pt)"
        raise CheckpointError(f"{name} {path} is a folder; give {_output_folder(path) or hint}")
    if not path.is_file():  # a FIFO, /dev/null or a link to nothing is named as such, not 'not found'
        why = not_a_file(path, "not found")
        raise CheckpointError(f"{name} {path} {why}: give a checkpoint {WRITTEN_BY} (e.g. runs/NAME/best.pt)")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path} is an ONNX model, not a checkpoint: this command takes a checkpoint of dpupose's own "
            f"network, {WRITTEN_BY}; {OWN_MODEL}"
        )
    return path


def _output_folder(path: Path) -> str | None:
    """What to give for a later step's output folder given as a checkpoint, or None: a `dpupose quantize` folder
    (its summary.json names the checkpoint, as given to quantize) or a split plan folder."""
    import json

    if (path / "plan.json").is_file():
        return (
            f"a checkpoint {WRITTEN_BY}, not a split plan folder, which runs with `dpupose run --plan {path}` "
            f"and `dpupose bench --plan {path}`"
        )
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("generated_by") != "dpupose quantize":
        return None
    source = summary.get("checkpoint")
    was = f" ({source}, as summary.json records it)" if isinstance(source, str) and source else ""
    return (
        f"the checkpoint it was quantized from{was}, not the `dpupose quantize` folder, which `dpupose eval` "
        f"(with an int8 --engine) and `dpupose bench` take as --quantized {path}"
    )


def _json_instead(path: Path) -> str | None:
    """The refusal for a JSON file given as a checkpoint (a split plan's plan.json, a run's config.json beside
    its best.pt), named as what it is; None for anything else."""
    from dpupose.formats import not_onnx

    try:
        with path.open("rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return None
    if not head.startswith(b"{"):
        return None
    if not_onnx(path) == "plan":
        return (
            f"{path} is a split plan, not a checkpoint: give a checkpoint {WRITTEN_BY} (runs/NAME/best.pt, "
            f"models/NAME/model.pt); a plan runs with `dpupose run --plan {path.parent}`"
        )
    beside = path.parent / "best.pt"
    instead = f": the run's checkpoint is {beside}" if beside.is_file() else ""
    return f"{path} is a JSON file, not a checkpoint: give a checkpoint {WRITTEN_BY} (runs/NAME/best.pt){instead}"


def read_checkpoint(path: str | Path, name: str = "checkpoint") -> dict[str, Any]:
    """The raw dict, or CheckpointError saying why it is unusable (`name`: as in check_checkpoint_path)."""
    path = check_checkpoint_path(path, name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated zip, pickle of another program, random bytes...
        raise CheckpointError(
            _json_instead(path)
            or (
                f"{path} is not a readable checkpoint (not a file torch.save wrote, or one cut short): use a "
                f"checkpoint {WRITTEN_BY}"
            )
        ) from None
    if isinstance(state, dict) and state.get("format") == FORMAT and "model" not in state:
        raise CheckpointError(
            f"{path} is marked as a dpupose checkpoint but holds no network weights (no 'model' entry): it was "
            f"damaged or written by another program; use a checkpoint {WRITTEN_BY}"
        )
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a dpupose checkpoint (no '{FORMAT}' marker): this command takes checkpoints of "
            f"dpupose's own network, {WRITTEN_BY}; {OWN_MODEL}"
        )
    return state


def _names(keys: list[str]) -> str:
    # Three: a weight's name is long ('module.dpu_part.backbone.features.0.0.weight'), and a wrapper's message
    # names both its missing and its unexpected ones on one line.
    return f"{len(keys)}: {shortlist([repr(k) for k in keys], 3)}"


def model_from_state(state: dict[str, Any], origin: str = "checkpoint") -> PoseNet:
    """The network of a checkpoint's dict, or CheckpointError saying what does not fit, checked in this
    order: model_config (fields a newer dpupose added, then values `dpupose train` cannot write), then the
    weights against a network built on the meta device, which allocates nothing (their names, their kinds
    of number, their shapes), and only then the network itself, into which they are copied. A model_config
    the weights do not fit (num_joints 10**12) is thus said to be one, not found by the allocator's traceback
    after the real network has taken all the memory it could."""
    config = state.get("model_config", {})
    if isinstance(config, dict):
        unknown = ModelConfig.unknown_fields(config)
        if unknown:
            raise CheckpointError(
                f"{origin}: its model_config has field(s) {', '.join(unknown)}, which this dpupose ({__version__}) "
                "does not know: it was written by a newer dpupose; use the version that wrote it"
            )
    try:
        cfg = ModelConfig(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{origin}: bad model_config ({exc}); the file is damaged: use a checkpoint {WRITTEN_BY}"
        ) from None
    if not isinstance(state["model"], dict):
        # Not its Python type's name ('a NoneType'), which says nothing to a user.
        raise CheckpointError(
            f"{origin}: its 'model' entry is not the network's weights (tensors by name): the file is damaged or "
            f"from another program; use a checkpoint {WRITTEN_BY}"
        )
    with torch.device("meta"):
        shell = PoseNet(cfg)
    _check_names(shell, state["model"], origin)
    _check_kinds(shell, state["model"], origin)
    _check_shapes(shell, state["model"], origin)
    # The shapes: load_state_dict checks them, and assign=True takes the tensors in where copying into meta
    # tensors would do nothing. It is given a copy of the dict: load_state_dict records the assign in the
    # dict's _metadata, and the real network's load then took the tensors as they were (half-precision
    # weights stayed half, and the float input met them in a RuntimeError).
    _load_weights(shell, dict(state["model"]), origin, assign=True)
    model = PoseNet(cfg)
    _load_weights(model, state["model"], origin)
    return model


def _check_names(model: PoseNet, weights: dict[str, Any], origin: str) -> None:
    """The weights' names are the network's. Names that differ are counted and a few shown: torch's message
    lists every one (hundreds, when the weights were saved from a wrapper such as DistributedDataParallel,
    'module.' before each name)."""
    expected, given = list(model.state_dict()), [str(k) for k in weights]
    missing = sorted(set(expected) - set(given), key=expected.index)
    unexpected = sorted(set(given) - set(expected), key=given.index)
    if missing or unexpected:
        parts = [f"missing {_names(missing)}"] if missing else []
        parts += [f"unexpected {_names(unexpected)}"] if unexpected else []
        wrapped = unexpected and all(k.startswith("module.") for k in unexpected)
        hint = (
            "the weights were saved from a DistributedDataParallel wrapper ('module.' before each name)"
            if wrapped
            else "it holds the weights of another network"
        )
        raise CheckpointError(
            f"{origin} does not match the model ({'; '.join(parts)}): {hint}; use a checkpoint {WRITTEN_BY}"
        )


def _kind(tensor: torch.Tensor) -> str:
    return "complex" if tensor.is_complex() else "floating-point" if tensor.is_floating_point() else "integer"


def _check_kinds(model: PoseNet, weights: dict[str, Any], origin: str) -> None:
    """Each tensor of `weights` must hold the kind of number the model's does: load_state_dict casts whatever
    it is given, so integer or boolean weights (a damaged or hand-made file) loaded rounded or as 0/1, and
    complex ones without their imaginary part after torch's warning, and eval reported their scores. Another
    floating-point precision (half, double) is a conversion, and is taken."""
    expected = model.state_dict()
    for name, value in weights.items():
        want = expected.get(name)
        if isinstance(value, torch.Tensor) and want is not None and _kind(value) != _kind(want):
            raise CheckpointError(
                f"{origin} does not match the model ({name} holds {_kind(value)} values ({value.dtype}) where the "
                f"model's are {_kind(want)}); the file is damaged: use a checkpoint {WRITTEN_BY}"
            )


def _check_shapes(model: PoseNet, weights: dict[str, Any], origin: str) -> None:
    """Each tensor has the shape of the network model_config describes. torch's own message named one
    tensor's torch.Size pair and nothing to do; a width or input size edited in model_config (or weights of
    another width under it) is the usual cause, and the line says which network the config describes."""
    expected = model.state_dict()
    differ = [
        (name, tuple(value.shape), tuple(expected[name].shape))
        for name, value in weights.items()
        if isinstance(value, torch.Tensor) and name in expected and tuple(value.shape) != tuple(expected[name].shape)
    ]
    if differ:
        name, got, want = differ[0]
        cfg = model.config
        raise CheckpointError(
            f"{origin} does not match the model ({len(differ)} weight(s) of other shapes than the network its "
            f"model_config describes, width_mult {cfg.width_mult:g}, decoder_channels {cfg.decoder_channels}, "
            f"num_joints {cfg.num_joints}: {name!r} is {list(got)} in the file, {list(want)} in that network): "
            f"the weights are another network's; use a checkpoint {WRITTEN_BY}"
        )


def _load_weights(model: PoseNet, weights: dict[str, Any], origin: str, assign: bool = False) -> None:
    try:
        model.load_state_dict(weights, assign=assign)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise CheckpointError(f"{origin} does not match the model ({detail})") from None


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the weights (names, dtypes, shapes, values): the same for a training checkpoint and its
    `dpupose export`, whatever the file around them holds."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def load_checkpoint(path: str | Path, name: str = "checkpoint") -> tuple[PoseNet, dict[str, Any]]:
    """(model in eval mode, the checkpoint dict); `name`: as in check_checkpoint_path."""
    state = read_checkpoint(path, name)
    model = model_from_state(state, str(path)).eval()
    return model, state
