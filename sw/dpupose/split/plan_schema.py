"""The split plan's data types (see dpupose.split.plan for the file format). Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpupose.errors import ModelFileError

PLAN_VERSION = 1
PLAN_FILE = "plan.json"
DEVICES = ("dpu", "cpu")
DTYPES = ("int8", "float32")
PREPROCESSING = ("imagenet",)

RESPLIT = "re-split the model with `dpupose split` (same dpupose version as the runtime)"


@dataclass(frozen=True)
class BoundaryTensor:
    """A tensor crossing a subgraph boundary, as that subgraph sees it."""

    name: str
    shape: tuple[int, ...]  # batch first; NHWC on the DPU side, NCHW on the CPU side
    layout: str  # one letter per axis: "NHWC", "NCHW", "NC", ...
    dtype: str  # "int8" (DPU side) or "float32"
    fix_point: int | None = None  # int8 only: real = int8 * 2**-fix_point

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "layout": self.layout,
            "dtype": self.dtype,
            "fix_point": self.fix_point,
        }


@dataclass(frozen=True)
class Subgraph:
    name: str
    device: str  # "dpu" or "cpu"
    file: str  # ONNX file, relative to the plan folder
    inputs: tuple[BoundaryTensor, ...]
    outputs: tuple[BoundaryTensor, ...]
    xmodel: str | None = None  # DPU only: compiled .xmodel, relative to the plan folder
    xmodel_subgraph: str | None = None  # DPU only: the DPU child subgraph's name in the xmodel
    reason: str | None = None  # CPU only: why this part is not on the DPU
    sha256: str | None = None  # of `file`, checked when loading
    xmodel_sha256: str | None = None  # of `xmodel` (split --xmodel records it), checked when loading

    @property
    def is_dpu(self) -> bool:
        return self.device == "dpu"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "device": self.device, "file": self.file}
        for key in ("xmodel", "xmodel_sha256", "xmodel_subgraph", "reason", "sha256"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_size: int  # square input side in pixels
    sha256: str  # of the source (whole-model) ONNX the plan was cut from


@dataclass(frozen=True)
class InputSpec:
    """The image tensor the first subgraph takes (after letterbox and normalization)."""

    name: str
    shape: tuple[int, ...]  # (1, 3, S, S)
    layout: str = "NCHW"
    dtype: str = "float32"
    preprocessing: str = "imagenet"  # RGB, /255, ImageNet mean/std


@dataclass(frozen=True)
class OutputNames:
    coords: str  # (N, 16, 2) normalized DSNT coordinates
    heatmaps: str | None = None  # (N, 16, H, W) flat-softmax heatmaps (sum 1)


@dataclass(frozen=True)
class Plan:
    fingerprint: str  # "0x..." of the DPU configuration
    dpu_config: str
    model: ModelInfo
    input: InputSpec
    outputs: OutputNames
    subgraphs: tuple[Subgraph, ...]
    version: int = PLAN_VERSION
    generated_by: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False)  # the plan folder (set by load_plan)
    # What this plan object has read of its files (read_file), and answers worked out from them (the runtime's
    # heatmaps check): not part of the plan, and empty in a copy made with dataclasses.replace.
    cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def path(self, relative: str) -> Path:
        """A file named in the plan, resolved against the plan folder."""
        return (self.root or Path(".")) / relative

    def read_file(self, relative: str) -> bytes:
        """A file named in the plan, read once and kept (OSError as reading it raises) until take_file."""
        key = ("bytes", relative)
        if key not in self.cache:
            self.cache[key] = self.path(relative).read_bytes()
        return self.cache[key]

    def take_file(self, relative: str) -> bytes | None:
        """The bytes read_file kept of a file (forgotten here), or None when it has not read them: what loads the
        file takes them instead of reading it again."""
        return self.cache.pop(("bytes", relative), None)

    @property
    def input_size(self) -> int:
        return self.model.input_size

    def subgraph(self, name: str) -> Subgraph:
        for sg in self.subgraphs:
            if sg.name == name:
                return sg
        raise KeyError(name)

    def split_from(self, model: str | Path) -> bool:
        """Whether this plan was cut from the whole-model ONNX file `model`: the file is there and has the
        sha256 the plan records (another model quantized into its folder since has another)."""
        from dpupose.fsio import sha256_file

        path = Path(model)
        return path.is_file() and sha256_file(path) == self.model.sha256.lower()

    def fingerprint_int(self) -> int:
        return parse_fingerprint(self.fingerprint, "plan.json fingerprint")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version}
        if self.generated_by:
            d["generated_by"] = self.generated_by
        d["fingerprint"] = self.fingerprint
        d["dpu_config"] = self.dpu_config
        d["model"] = {"name": self.model.name, "input_size": self.model.input_size, "sha256": self.model.sha256}
        d["input"] = {
            "name": self.input.name,
            "shape": list(self.input.shape),
            "layout": self.input.layout,
            "dtype": self.input.dtype,
            "preprocessing": self.input.preprocessing,
        }
        d["outputs"] = {"coords": self.outputs.coords, "heatmaps": self.outputs.heatmaps}
        d["subgraphs"] = [sg.to_dict() for sg in self.subgraphs]
        if self.metadata:
            d["metadata"] = dict(self.metadata)
        return d


def parse_fingerprint(value: object, where: str) -> int:
    """A 64-bit fingerprint written as "0x..." (or a decimal string / int) -> int."""
    if isinstance(value, bool):
        raise ModelFileError(f'{where}: fingerprint must be a hex string like "0x101000016010404"')
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 0)
        except ValueError:
            raise ModelFileError(f'{where}: {value!r} is not a fingerprint (expected "0x...")') from None
    else:
        raise ModelFileError(f'{where}: fingerprint must be a hex string like "0x101000016010404"')
    if not 0 <= number < 2**64:
        raise ModelFileError(f"{where}: fingerprint {value!r} is not a 64-bit number")
    return number
