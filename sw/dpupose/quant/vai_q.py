"""Adapter to Xilinx's vai_q_pytorch (`pytorch_nndct`, inside the Vitis AI 2.5 docker image).

The DPU part (image -> logits) goes through vai_q's three steps: `calib` (forward passes over the
calibration images, then `export_quant_config`), `test` (the quantized model evaluated; one batch-1
forward is required before export) and `export_xmodel`, which writes `DpuPart_int.xmodel` for
`vai_c_xir` (scripts/vitis_ai_quantize.sh compiles it for a chosen arch.json). The CPU part stays float.
Given a split plan (`prepare --plan`), the DPU part is cut where the plan's DPU subgraph ends
(quant/dpu_cut.py), so that the xmodel computes exactly that subgraph; `DPU_PART_FILE` in the work folder
says which tensors it takes and gives, and the script keeps a copy beside the compiled xmodel for
`dpupose split --xmodel` to check.

Outside the docker image `pytorch_nndct` is missing and ToolNotFoundError says to use the script.

The docker image's conda environment may run an older Python and PyTorch than this project, so the
script splits the job: `python -m dpupose.quant.vai_q prepare` (host, this project's environment) writes
the calibration crops and a plain state dict into a work folder; `python -m dpupose.quant.vai_q run`
(container) needs only numpy, torch, pytorch_nndct, dpupose.model and this module, which is written to
import on Python 3.7.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpupose.errors import ArtifactError, DpuposeError, ToolNotFoundError, UsageError
from dpupose.fsio import json_text, loads_json, write_set

log = logging.getLogger(__name__)

SCRIPT = "scripts/vitis_ai_quantize.sh"
# What the xmodel computes: {"input", "output", "checkpoint", "macs" (of the compiled part)[, "split": the plan's
# split options][, "fingerprint": the DPU fingerprint of the arch.json it is compiled for]}
DPU_PART_FILE = "dpu_part.json"


def vai_q_available() -> bool:
    if "pytorch_nndct" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("pytorch_nndct") is not None
    except (ImportError, ValueError):
        return False


def _torch_quantizer():
    try:
        from pytorch_nndct.apis import torch_quantizer
    except ImportError as exc:
        raise ToolNotFoundError(
            f"vai_q_pytorch (pytorch_nndct) is not installed here ({exc}); run {SCRIPT}, which runs "
            "`dpupose quantize --engine vai_q` inside the Vitis AI 2.5 docker image and compiles the xmodel"
        ) from None
    return torch_quantizer


def _takes_target(torch_quantizer) -> bool:
    """Whether torch_quantizer has a `target` argument (vai_q_pytorch 3.0 and later; 2.5's has none and
    raises TypeError on one)."""
    try:
        params = inspect.signature(torch_quantizer).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: let vai_q_pytorch answer
    return "target" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_vai_q(
    model,
    images: Sequence[np.ndarray],
    out_dir: str | Path,
    target: str | None = None,
    max_test_samples: int = 16,
    cut: int | None = None,
) -> dict:
    """calib -> test -> export_xmodel on model.dpu_part, or on its first `cut` layers (quant/dpu_cut.py);
    returns what it did (for summary.json)."""
    import torch

    torch_quantizer = _torch_quantizer()
    out_dir = Path(out_dir)
    work = out_dir / "vai_q"
    work.mkdir(parents=True, exist_ok=True)
    if cut is None:
        dpu, rest = model.dpu_part.eval(), torch.nn.Identity()
    else:
        from dpupose.quant.dpu_cut import split_layers

        dpu, rest = split_layers(model.dpu_part, cut)
    example = torch.from_numpy(images[0][:1])
    kwargs: dict = {"output_dir": str(work), "device": torch.device("cpu")}
    if target:
        if not _takes_target(torch_quantizer):
            raise UsageError(
                f"--target {target}: this vai_q_pytorch's torch_quantizer takes no target (Vitis AI 2.5 has none; "
                "it came with 3.0): leave --target out, the DPU is chosen by the arch.json that vai_c_xir compiles for"
            )
        kwargs["target"] = target

    quantizer = torch_quantizer("calib", dpu, (example,), **kwargs)
    qmodel = quantizer.quant_model
    with torch.no_grad():
        for x in images:
            qmodel(torch.from_numpy(x))
    quantizer.export_quant_config()
    log.info("vai_q calib done on %d samples", sum(len(x) for x in images))

    quantizer = torch_quantizer("test", dpu, (example,), **kwargs)
    qmodel = quantizer.quant_model
    dist_sum = 0.0
    joints = 0
    tested = 0
    with torch.no_grad():
        for x in images:
            for i in range(len(x)):  # batch 1, as export_xmodel requires
                if tested >= max_test_samples:
                    break
                xi = torch.from_numpy(x[i : i + 1])
                coords8, _ = model.cpu_part(rest(qmodel(xi)))
                coords32, _ = model(xi)
                d = torch.linalg.vector_norm(coords8 - coords32, dim=-1)
                dist_sum += float(d.sum())
                joints += d.numel()
                tested += 1
    quantizer.export_xmodel(output_dir=str(work), deploy_check=False)
    expected = work / f"{type(dpu).__name__}_int.xmodel"
    if not expected.is_file():
        found = sorted(work.glob("*.xmodel"))
        if not found:
            raise ArtifactError(f"vai_q export_xmodel wrote no .xmodel into {work}")
        expected = found[0]
    final = out_dir / expected.name
    expected.replace(final)
    size = model.config.input_size
    return {
        "xmodel": final.name,
        "quant_config": "vai_q/quant_info.json",
        "target": target,
        "cut_layers": cut,
        "test_samples": tested,
        "fp32_vs_int8": {"coords_mean_distance_px": dist_sum / max(joints, 1) * size / 2.0},
    }


def prepare(
    checkpoint: str | Path,
    work: str | Path,
    calib_data: str = "synthetic",
    data_root: str | Path | None = None,
    num_calib: int = 100,
    batch_size: int = 8,
    seed: int = 0,
    plan: str | Path | None = None,
    arch: str | Path | None = None,
) -> Path:
    """Host side: write calib.npy (N, 3, S, S float32), model.pt (state dict, config and, with a split
    plan, the layer count `cut` of its DPU subgraph) and DPU_PART_FILE into `work`. With `arch` (the
    arch.json vai_c_xir will compile for) its fingerprint is recorded, and must be the plan's."""
    import torch

    from dpupose.model.checkpoint import load_checkpoint
    from dpupose.quant.data import open_calibration_set

    fingerprint = _arch_fingerprint(arch, plan) if arch is not None else None
    model, _ = load_checkpoint(checkpoint, "--checkpoint")
    part = {"input": "image", "output": "logits", "checkpoint": Path(checkpoint).name}
    if fingerprint is not None:
        part["fingerprint"] = f"0x{fingerprint:x}"
    cut = None
    if plan is not None:
        part["input"], part["output"], cut, part["split"], expected = _plan_cut(model, plan)
    calib = open_calibration_set(calib_data, data_root, num_calib, seed)
    images = np.concatenate([b.images for b in calib.batches(model.config.input_size, batch_size)])
    if cut is not None:
        _check_cut(model, cut, images[:batch_size], expected, plan)
    # What the xmodel computes, by its multiply-accumulates: `dpupose split --xmodel` holds them to the split's
    # DPU subgraph (the tensor names and shapes are the same for every width).
    part["macs"] = _part_macs(model, cut)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "cut": cut}
    # Made in memory and written as a set (fsio.write_set): on a full disk np.save's own write said '...
    # requested and ... written' and torch.save's a RuntimeError, naming no file, and left them cut short.
    calib, weights = io.BytesIO(), io.BytesIO()
    np.save(calib, images)
    torch.save(state, weights)
    part_json = (json_text(part, indent=2) + "\n").encode("utf-8")
    write_set(
        [
            (work / "calib.npy", calib.getvalue()),
            (work / "model.pt", weights.getvalue()),
            (work / DPU_PART_FILE, part_json),
        ]
    )
    return work


def _arch_fingerprint(arch: str | Path, plan: str | Path | None) -> int:
    """The fingerprint of the arch.json vai_c_xir compiles for; UsageError when a split plan was made for
    another DPU configuration (the xmodel would not run with that plan)."""
    from dpupose.runtime.guard import arch_fingerprint
    from dpupose.split.plan import load_plan

    path = Path(arch)
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--arch {arch}: cannot read it as JSON ({exc}); give the overlay's arch.json") from None
    try:
        fingerprint = arch_fingerprint(data, f"--arch {arch}")
    except DpuposeError as exc:
        raise UsageError(str(exc)) from None
    if plan is not None:
        p = load_plan(plan, check_paths=False)
        if p.fingerprint_int() != fingerprint:
            raise UsageError(
                f"--arch {arch} is for DPU fingerprint 0x{fingerprint:x} but --plan {plan} was split for "
                f"0x{p.fingerprint_int():x} (DPU configuration {p.dpu_config}), so the xmodel would not run with "
                f"that plan: compile with that configuration's arch.json (`dpupose dpu files --config "
                f"{p.dpu_config}`), or split for this arch.json's configuration and compile for that plan"
            )
    return fingerprint


def _plan_cut(model, plan: str | Path) -> tuple[str, str, int, str, tuple]:
    """(input, output, cut, how it was split, the output's NCHW shape) of a split plan's one DPU subgraph,
    which must start at the image."""
    from dpupose.quant.dpu_cut import cut_index
    from dpupose.split.plan import load_plan

    p = load_plan(plan, check_paths=False)
    dpu = [sg for sg in p.subgraphs if sg.is_dpu]
    shown = "; ".join(
        f"{sg.name}: {', '.join(t.name for t in sg.inputs)} -> {', '.join(t.name for t in sg.outputs)}" for sg in dpu
    )
    if len(dpu) != 1 or [t.name for t in dpu[0].inputs] != [p.input.name] or len(dpu[0].outputs) != 1:
        raise UsageError(
            f"--plan {plan}: its DPU subgraphs are {shown or 'none'}; one xmodel is compiled for one DPU "
            f"subgraph that takes the image ({p.input.name}) and gives one tensor: split without the pixel "
            "shuffle on the CPU (plain, or --cpu-from NODE) and compile for that plan"
        )
    if p.model.input_size != model.config.input_size:
        raise UsageError(
            f"--plan {plan} is for {p.model.input_size} px input but the checkpoint is {model.config.input_size} px: "
            "give the plan made from this checkpoint"
        )
    output = dpu[0].outputs[0].name
    how = [f"--config {p.dpu_config}"]
    if p.metadata.get("optimized"):
        how.append("--optimize")
    if isinstance(p.metadata.get("cpu_from"), str):
        how.append(f"--cpu-from {p.metadata['cpu_from']}")
    boundary = dpu[0].outputs[0]
    shape = tuple(boundary.shape)
    if boundary.layout == "NHWC" and len(shape) == 4:
        shape = (shape[0], shape[3], shape[1], shape[2])
    cut = cut_index(model.dpu_part, output, model.config.input_size)
    return p.input.name, output, cut, " ".join(how), shape[1:]


def _part_macs(model, cut: int | None) -> int:
    """Multiply-accumulates of the DPU part, or of its first `cut` layers."""
    from dpupose.model.complexity import count_macs
    from dpupose.quant.dpu_cut import split_layers

    part = model.dpu_part if cut is None else split_layers(model.dpu_part, cut)[0]
    size = model.config.input_size
    return count_macs(part, (3, size, size))


def _plan_dpu_macs(plan: str | Path) -> int | None:
    """Multiply-accumulates of the plan's DPU subgraph file (None if it cannot be read: the shapes still
    checked)."""
    from dpupose.split.a53 import file_macs
    from dpupose.split.plan import load_plan

    try:
        p = load_plan(plan, check_paths=False)
        (sg,) = [sg for sg in p.subgraphs if sg.is_dpu]
        return file_macs(p.root / sg.file)
    except Exception:  # a missing or damaged file: the shape check above is what there is
        return None


def _check_cut(model, cut: int, images: np.ndarray, expected: tuple, plan: str | Path) -> None:
    """The cut half gives the plan's DPU output shape and multiply-accumulates (a checkpoint of another width
    or decoder than the plan's model differs here, not on the board), and the two halves recompose the whole
    part."""
    import torch

    from dpupose.errors import QuantizationError
    from dpupose.quant.dpu_cut import split_layers

    head, rest = split_layers(model.dpu_part, cut)
    with torch.no_grad():
        x = torch.from_numpy(images)
        mid = head(x)
        whole = model.dpu_part.eval()(x)
        halves = rest(mid)
    if tuple(mid.shape[1:]) != tuple(expected):
        raise UsageError(
            f"--plan {plan}: its DPU subgraph gives {list(expected)} (C, H, W) but this checkpoint's DPU part cut "
            f"there gives {list(mid.shape[1:])}: give the plan made from this checkpoint"
        )
    # The shapes agree whatever the width where the cut is the 16-channel logits: the multiply-accumulates
    # tell another network (a width-1.4 checkpoint for a width-0.5 plan at the same size was compiled).
    plan_macs = _plan_dpu_macs(plan)
    if plan_macs is not None:
        from dpupose.model.complexity import count_macs
        from dpupose.split.a53 import same_macs

        macs = count_macs(head, tuple(x.shape[1:]))
        if not same_macs(macs, plan_macs):
            raise UsageError(
                f"--plan {plan}: its DPU subgraph is {plan_macs / 1e9:.3f} GMAC but this checkpoint's DPU part "
                f"cut there is {macs / 1e9:.3f} GMAC (another --width or decoder): give the plan made from this "
                "checkpoint"
            )
    if not torch.allclose(whole, halves, rtol=1e-4, atol=1e-4 * float(whole.abs().max())):
        raise QuantizationError("the DPU part cut at the plan's DPU output does not recompose to the whole part")


def run_from_work(work: str | Path, out: str | Path, target: str | None = None, batch_size: int = 8) -> dict:
    """Container side: vai_q on what `prepare` wrote; writes out/DpuPart_int.xmodel, out/vai_q_summary.json."""
    import torch

    from dpupose.model.pose import ModelConfig, PoseNet

    work = Path(work)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.load(str(work / "model.pt"), map_location="cpu")
    model = PoseNet(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    images = np.load(str(work / "calib.npy"))
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    info = run_vai_q(model, batches, out, target=target, cut=state.get("cut"))
    if (work / DPU_PART_FILE).is_file():
        info["dpu_part"] = loads_json((work / DPU_PART_FILE).read_text())
    (out / "vai_q_summary.json").write_text(json_text(info, indent=2) + "\n")
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpupose.quant.vai_q", description=__doc__)
    sub = parser.add_subparsers(dest="step")
    p = sub.add_parser("prepare", help="host: calibration crops and a plain state dict into --work")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--calib-data", default="synthetic", choices=("synthetic", "mpii"))
    p.add_argument("--data-root")
    p.add_argument("--num-calib", type=int, default=100)
    p.add_argument("--plan", help="a split plan folder: compile the DPU part its DPU subgraph computes")
    p.add_argument("--arch", help="the arch.json vai_c_xir compiles for (its fingerprint is checked and recorded)")
    r = sub.add_parser("run", help="container: calib -> test -> export_xmodel from --work into --out")
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--target")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.step == "prepare":
            prepare(
                args.checkpoint, args.work, args.calib_data, args.data_root, args.num_calib, plan=args.plan,
                arch=args.arch,
            )  # fmt: skip
        elif args.step == "run":
            run_from_work(args.work, args.out, args.target)
        else:
            parser.print_help()
            return 2
    except DpuposeError as exc:
        print(f"vai_q: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder that cannot be made: one line naming the path, as dpupose's
        from dpupose.cli import os_error_line

        print(f"vai_q: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
