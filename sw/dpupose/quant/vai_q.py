"""Adapter to Xilinx's vai_q_pytorch (`pytorch_nndct`, inside the Vitis AI 2.5 docker image).

The DPU part (image -> logits) goes through vai_q's three steps: `calib` (forward passes over the
calibration images, then `export_quant_config`), `test` (the quantized model evaluated; one batch-1
forward is required before export) and `export_xmodel`, which writes `DpuPart_int.xmodel` for
`vai_c_xir` (scripts/vitis_ai_quantize.sh compiles it for a chosen arch.json). The CPU part stays float.

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
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpupose.errors import ArtifactError, DpuposeError, ToolNotFoundError

log = logging.getLogger(__name__)

SCRIPT = "scripts/vitis_ai_quantize.sh"


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


def run_vai_q(
    model,
    images: Sequence[np.ndarray],
    out_dir: str | Path,
    target: str | None = None,
    max_test_samples: int = 16,
) -> dict:
    """calib -> test -> export_xmodel on model.dpu_part; returns what it did (for summary.json)."""
    import torch

    torch_quantizer = _torch_quantizer()
    out_dir = Path(out_dir)
    work = out_dir / "vai_q"
    work.mkdir(parents=True, exist_ok=True)
    dpu = model.dpu_part.eval()
    example = torch.from_numpy(images[0][:1])
    kwargs: dict = {"output_dir": str(work), "device": torch.device("cpu")}
    if target:
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
                coords8, _ = model.cpu_part(qmodel(xi))
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
) -> Path:
    """Host side: write calib.npy (N, 3, S, S float32) and model.pt into `work` (state dict + config)."""
    import torch

    from dpupose.model.checkpoint import load_checkpoint
    from dpupose.quant.data import open_calibration_set

    calib = open_calibration_set(calib_data, data_root, num_calib, seed)
    model, _ = load_checkpoint(checkpoint)
    images = np.concatenate([b.images for b in calib.batches(model.config.input_size, batch_size)])
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "calib.npy", images)
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, work / "model.pt")
    return work


def run_from_work(work: str | Path, out: str | Path, target: str | None = None, batch_size: int = 8) -> dict:
    """Container side: vai_q on what `prepare` wrote; writes out/DpuPart_int.xmodel, out/vai_q_summary.json."""
    import torch

    from dpupose.model.pose import ModelConfig, PoseNet

    work = Path(work)
    out = Path(out)
    state = torch.load(str(work / "model.pt"), map_location="cpu")
    model = PoseNet(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    images = np.load(str(work / "calib.npy"))
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    info = run_vai_q(model, batches, out, target=target)
    (out / "vai_q_summary.json").write_text(json.dumps(info, indent=2) + "\n")
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
    r = sub.add_parser("run", help="container: calib -> test -> export_xmodel from --work into --out")
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--target")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.step == "prepare":
            prepare(args.checkpoint, args.work, args.calib_data, args.data_root, args.num_calib)
        elif args.step == "run":
            run_from_work(args.work, args.out, args.target)
        else:
            parser.print_help()
            return 2
    except DpuposeError as exc:
        print(f"vai_q: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
