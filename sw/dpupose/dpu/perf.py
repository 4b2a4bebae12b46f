"""DPU performance model: predicted latency and FPS of an ONNX graph on a DPU configuration and board.

Per layer (cycles at the 1x clock f; PP/ICP/OCP from the ARCH, ALU_PP from the ALU parallel option):

- conv:     OH * ceil(OW/PP) * ceil(OC/OCP) * KH * KW * ceil(IC/ICP)   (pixel parallelism over the output
            width, channels padded to ICP/OCP multiples). With channel augmentation and IC < ICP the KW*IC
            values of a kernel row are packed: KH * ceil(KW*IC/ICP) instead of KH*KW*ceil(IC/ICP).
            Grouped conv: per group. Transposed conv: kernel ceil(K/stride) per output pixel.
- depthwise transposed conv (a depthwise ConvTranspose; a bilinear Resize at scale s: kernel 2s, stride s,
            fixed weights):
            OH * ceil(OW/ALU_PP) * ceil(C/ICP) * ceil(KH/s) * ceil(KW/s), the depthwise formula with the
            transposed conv's ceil(K/stride) taps (4 at every scale)
- fc:       ceil(IC/ICP) * ceil(OC/OCP) per row (a Gemm's N; a MatMul's every dimension before the last)
- depthwise / pool (ALU engine): OH * ceil(OW/ALU_PP) * ceil(C/ICP) * KH * KW; a Mul by a constant is a 1x1
            depthwise conv (vai_q_pytorch's filter_eltwise), one tap, up to 256 x ICP channels (over that, the
            eltwise mult the op filter falls back to); so is a batch norm not folded into a conv (one tap)
- eltwise (eltwise engine): OH * ceil(OW/EPP) * ceil(C/ICP) * (number of inputs), EPP the eltwise pixel
            parallelism: ALU_PP on IP v4 (VART's target factory, create_target_DPUCZDX8G_ISA1, gives its
            eltwise engine the ALU engine's pair, ICP x ALU_PP), 1 on IP v3.x (DPUCZDX8G_ISA0_* targets).
            It is the one engine rate that differs between the two (docs/dpu-configurations.md); `ip` picks it
- hard sigmoid (the ALU's hsigmoid op, never fused): OH * ceil(OW/ALU_PP) * ceil(C/ICP); a hard swish is
  that layer and an eltwise mult of two inputs (x and the hsigmoid's int8 result), each with its traffic
- data movement (DepthToSpace, a nearest Resize, a Pad): no compute; its DDR traffic (read + write the tensor).
- unknown op (only with unknown="conservative"): 18 ALU passes over the output + its DDR traffic.

DDR traffic per layer = its INT8 inputs + output + weights + bias; memory time = bytes / bandwidth, where
bandwidth = min(board DDR peak * ddr_efficiency / active cores, 32 bytes per 1x cycle per core (two 128-bit
data masters)). Layer time = max(compute, memory) + layer_overhead_cycles / f. Latency (single thread, one
core busy) = sum of layer times; throughput with N cores = N / latency with the DDR shared N ways.

The free constants (layer_overhead_cycles, ddr_efficiency, and host_ms, the per-frame CPU time inside the
published end-to-end figures) are fitted by `dpupose.dpu.calibrate` and stored in
``hw/dpu/perf/constants.toml``. `estimate` reports DPU time only; host_ms is not added.

API: estimate(model_or_path, cfg, board=None, constants=None, unknown="error", ip=DEFAULT_IP) -> Estimate
     estimate_graph(graph, cfg, board, constants, ip=DEFAULT_IP) -> Estimate  (on an already extracted DpuGraph)
     ip: the DPUCZDX8G IP version, one of IP_VERSIONS; default "4.0", the IP of Vitis AI 2.5 and its DPU-PYNQ
     overlays (fingerprint 0x101000016010404 in DPU-PYNQ 2.5's host/arch_ultra96.json: ISA1). The op set
     is IP v4's whatever `ip` is, but for what IP v3.x lacks (no hsigmoid, no eltwise mult: a hard sigmoid, a
     hard swish and an element-wise Mul are not DPU layers there, dpu.ops.isa0_refusal) and the eltwise rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dpupose.dpu.board import Board, load_board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.graph import DpuGraph, Layer, extract_layers
from dpupose.dpu.ops import DEFAULT_IP, IP_VERSIONS, check_ip, max_conv_channels
from dpupose.dpu.paths import hw_dir
from dpupose.dpu.tomlload import read_toml, reject_unknown
from dpupose.errors import ConfigError, ModelFileError

AXI_BYTES_PER_CYCLE = 32  # per core: two 128-bit data masters at the 1x clock
UNKNOWN_ALU_PASSES = 18  # conservative cost of an op the model does not know
HEAVY_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool"}
# DPUCZDX8G IP versions (dpu.ops.IP_VERSIONS) -> the ISA of their VART targets: v3.3, v3.4 ISA0; v4.0, v4.1 ISA1.
# The eltwise engine runs 1 pixel per cycle on ISA0 (DPUCZDX8G_ISA0_<ARCH>_MAX.prototxt) and ALU_PP on ISA1; every
# other engine rate is the same. ISA0 has no hsigmoid and no eltwise mult: the walk leaves them out (dpu.ops).


@dataclass(frozen=True)
class PerfConstants:
    layer_overhead_cycles: float  # fixed cost per DPU layer (instruction issue, pipeline fill, DDR latency)
    ddr_efficiency: float  # achievable fraction of the board's peak DDR bandwidth
    host_ms: float  # per-frame CPU time in the published end-to-end figures (not part of estimates)


def constants_path() -> Path:
    return hw_dir() / "dpu" / "perf" / "constants.toml"


def load_constants(path: str | Path | None = None) -> PerfConstants:
    """The fitted constants (hw/dpu/perf/constants.toml, written by `dpupose dpu calibrate --write`)."""
    p = Path(path) if path else constants_path()
    if not p.is_file():
        raise ConfigError(f"{p}: no fitted performance constants; run `dpupose dpu calibrate --write`")
    data = read_toml(p)
    names = [f for f in PerfConstants.__dataclass_fields__]
    reject_unknown(data, names, str(p))
    missing = [k for k in names if k not in data]
    if missing:
        raise ConfigError(f"{p}: missing {', '.join(missing)}")
    values = {}
    for k in names:
        v = data[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{p}: {k} must be a non-negative number, got {v!r}")
        values[k] = float(v)
    if not 0 < values["ddr_efficiency"] <= 1:
        raise ConfigError(
            f"{p}: ddr_efficiency is a fraction of the peak bandwidth (0 < x <= 1), got {values['ddr_efficiency']!r}"
        )
    return PerfConstants(**values)


def _conv_cycles(oh: int, ow: int, cin: int, cout: int, kh: int, kw: int, cfg: DpuConfig) -> int:
    if cfg.channel_augmentation and cin < cfg.icp:
        taps = kh * math.ceil(kw * cin / cfg.icp)
    else:
        taps = kh * kw * math.ceil(cin / cfg.icp)
    return oh * math.ceil(ow / cfg.pp) * math.ceil(cout / cfg.ocp) * taps


def _alu_cycles(oh: int, ow: int, c: int, taps: int, cfg: DpuConfig, pp: int | None = None) -> int:
    return oh * math.ceil(ow / (pp or cfg.alu_pp)) * math.ceil(c / cfg.icp) * taps


def eltwise_pixel_parallel(cfg: DpuConfig, ip: str = DEFAULT_IP) -> int:
    """Pixels per cycle of the eltwise engine: ALU_PP on IP v4 (ISA1), 1 on IP v3.x (ISA0)."""
    return cfg.alu_pp if IP_VERSIONS[check_ip(ip)] == 1 else 1


def layer_cycles(layer: Layer, cfg: DpuConfig, ip: str = DEFAULT_IP) -> int:
    """Compute cycles of one layer at the 1x clock (batch included) on DPUCZDX8G IP version `ip`."""
    n, c, oh, ow = layer.output
    kh, kw = layer.kernel
    cin = layer.inputs[0][1] if layer.inputs else c
    if layer.kind == "conv":
        return n * _conv_cycles(oh, ow, cin, c, kh, kw, cfg)
    if layer.kind == "gconv":
        g = layer.groups
        return n * g * _conv_cycles(oh, ow, cin // g, c // g, kh, kw, cfg)
    if layer.kind == "deconv":
        sh, sw = layer.stride
        return n * _conv_cycles(oh, ow, cin, c, math.ceil(kh / sh), math.ceil(kw / sw), cfg)
    if layer.kind == "fc":
        return n * math.ceil(cin / cfg.icp) * math.ceil(c / cfg.ocp)
    if layer.kind in ("dwconv", "pool", "gap"):
        return n * _alu_cycles(oh, ow, c, kh * kw, cfg)
    if layer.kind == "dwdeconv":
        sh, sw = layer.stride
        return n * _alu_cycles(oh, ow, c, math.ceil(kh / sh) * math.ceil(kw / sw), cfg)
    if layer.kind == "hsigmoid":
        return n * _alu_cycles(oh, ow, c, 1, cfg)
    if layer.kind == "eltwise":
        return n * _alu_cycles(oh, ow, c, max(1, len(layer.inputs)), cfg, eltwise_pixel_parallel(cfg, ip))
    if layer.kind == "unknown":
        return n * _alu_cycles(oh, ow, c, UNKNOWN_ALU_PASSES, cfg)
    return 0  # data movement


def layer_bytes(layer: Layer) -> int:
    """DDR bytes of one layer: INT8 inputs, output, weights and bias."""
    return sum(math.prod(s) for s in layer.inputs) + math.prod(layer.output) + layer.weight_bytes


def bandwidth(cfg: DpuConfig, board: Board, constants: PerfConstants, active_cores: int = 1) -> float:
    """Bytes/s one core gets while `active_cores` cores stream from DDR."""
    ddr = board.ddr_bandwidth_gbps * 1e9 * constants.ddr_efficiency / active_cores
    return min(ddr, AXI_BYTES_PER_CYCLE * cfg.clock_mhz * 1e6)


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op: str
    kind: str
    output: tuple[int, int, int, int]
    macs: int
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    time_ms: float
    bound: str  # "compute", "memory" or "overhead": what dominates the layer's time


@dataclass
class Estimate:
    """A predicted (never measured) DPU-only performance figure."""

    config: str
    board: str
    arch: str
    clock_mhz: int
    cores: int
    latency_ms: float  # one run (`batch` frames), one thread, one core busy (DPU time only)
    fps: float  # frames per second: batch * 1000 / latency_ms
    throughput_fps: float  # frames per second, all cores busy, DDR shared
    macs: int
    layers: list[LayerEstimate] = field(default_factory=list)
    excluded: list[tuple[str, str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The one of `warnings` about convs wider than the DPU takes (None: none is), which `dpu compare` repeats.
    too_wide_warning: str | None = None
    constants: PerfConstants | None = None
    # Images per run (a model exported at a fixed batch of 2 costs two frames a run; a symbolic batch is 1).
    batch: int = 1

    @property
    def gops(self) -> float:
        return 2 * self.macs / 1e9

    def breakdown(self) -> dict[str, float]:
        """Milliseconds per layer kind."""
        out: dict[str, float] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0.0) + layer.time_ms
        return out

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "predicted": True,
            "config": self.config,
            "board": self.board,
            "arch": self.arch,
            "clock_mhz": self.clock_mhz,
            "cores": self.cores,
            "batch": self.batch,
            "latency_ms": round(self.latency_ms, 6),
            "fps": round(self.fps, 2),
            "throughput_fps": round(self.throughput_fps, 2),
            "gops": round(self.gops, 4),
            "dpu_layers": len(self.layers),
            "time_by_kind_ms": {k: round(v, 4) for k, v in self.breakdown().items()},
            "excluded": [{"node": n, "op": o, "reason": r} for n, o, r in self.excluded],
            "unknown_ops": [{"node": n, "op": o} for n, o in self.unknown],
            "warnings": list(self.warnings),
            "constants": asdict(self.constants) if self.constants else None,
        }
        if per_layer:
            d["layers"] = [asdict(layer) for layer in self.layers]
        return d


def _latency_s(
    layers: list[Layer], cfg: DpuConfig, board: Board, constants: PerfConstants, active: int, ip: str = DEFAULT_IP
) -> tuple[float, list[LayerEstimate]]:
    f = cfg.clock_mhz * 1e6
    bw = bandwidth(cfg, board, constants, active)
    ovh = constants.layer_overhead_cycles / f
    total = 0.0
    rows: list[LayerEstimate] = []
    for layer in layers:
        compute = layer_cycles(layer, cfg, ip) / f
        memory = layer_bytes(layer) / bw
        t = max(compute, memory) + ovh
        total += t
        bound = "overhead" if ovh > max(compute, memory) else ("compute" if compute >= memory else "memory")
        rows.append(
            LayerEstimate(
                layer.name,
                layer.op,
                layer.kind,
                layer.output,
                layer.macs,
                compute * 1e3,
                memory * 1e3,
                ovh * 1e3,
                t * 1e3,
                bound,
            )
        )
    return total, rows


def estimate_graph(
    graph: DpuGraph, cfg: DpuConfig, board: Board, constants: PerfConstants, ip: str = DEFAULT_IP
) -> Estimate:
    check_ip(ip)
    if not graph.layers:
        raise ModelFileError("the model has no layer the DPU runs; nothing to estimate")
    latency, rows = _latency_s(graph.layers, cfg, board, constants, active=1, ip=ip)
    busy, _ = _latency_s(graph.layers, cfg, board, constants, active=cfg.cores, ip=ip)
    warnings: list[str] = []
    if graph.unknown:
        ops = ", ".join(sorted({op for _, op in graph.unknown}))
        warnings.append(f"op(s) the model does not know, estimated conservatively: {ops}")
    after_cpu = [n for n, op, why in graph.excluded if why == "after a CPU op" and op in HEAVY_OPS]
    if after_cpu:
        warnings.append(
            f"{len(after_cpu)} conv/FC/pool layer(s) after a CPU op are not estimated (they would need "
            f"another DPU subgraph), first: {after_cpu[0]}"
        )
    # The channel limit dpupose split's operator rules hold a conv to (dpu/ops.py): a wide network (--width 4:
    # 3840 and 5120 channels) has convs the split and this estimate run on the CPU, and the estimate stops
    # there, so configurations of different ICP cost different parts of it: said in a warning.
    too_wide_warning = None
    if graph.too_wide:
        too_wide_warning = (
            f"{len(graph.too_wide)} conv layer(s) have more than 256 x ICP = {max_conv_channels(cfg)} channels, "
            "which `dpupose split` runs on the CPU: this estimate leaves them and everything after them out, "
            f"first: {graph.too_wide[0]}"
        )
        warnings.append(too_wide_warning)
    return Estimate(
        config=cfg.name,
        board=board.name,
        arch=cfg.arch.value,
        clock_mhz=cfg.clock_mhz,
        cores=cfg.cores,
        latency_ms=latency * 1e3,
        fps=graph.batch / latency,  # frames, not runs: a run of a model at a fixed batch of 2 is two frames
        throughput_fps=cfg.cores * graph.batch / busy,
        macs=graph.macs,
        layers=rows,
        excluded=list(graph.excluded),
        unknown=list(graph.unknown),
        warnings=warnings,
        too_wide_warning=too_wide_warning,
        constants=constants,
        batch=graph.batch,
    )


def estimate(
    model: Any,
    cfg: DpuConfig,
    board: Board | str | None = None,
    constants: PerfConstants | None = None,
    unknown: str = "error",
    ip: str = DEFAULT_IP,
) -> Estimate:
    """Predicted DPU latency/FPS of `model` (ONNX path or ModelProto, FP32 or QDQ) on `cfg`.

    board defaults to the configuration's board (it sets the DDR bandwidth). Ops that are not DPU ops are
    excluded (listed in Estimate.excluded); unknown ops raise ModelFileError unless unknown="conservative".
    ip is the DPUCZDX8G IP version (IP_VERSIONS), which sets the eltwise engine's rate and, on IP v3.x, leaves
    out the hard activations and element-wise mults it has no op for.
    """
    check_ip(ip)
    b = board if isinstance(board, Board) else load_board(board or cfg.board)
    graph = extract_layers(model, cfg, unknown=unknown, ip=ip)
    return estimate_graph(graph, cfg, b, constants or load_constants(), ip=ip)
