"""Adapter to Xilinx's vai_q_pytorch (`pytorch_nndct`, inside the Vitis AI 2.5 docker image).

The DPU part (image -> logits) goes through vai_q's three steps: `calib` (forward passes over the
calibration images, then `export_quant_config`), `test` (the quantized model evaluated; one batch-1
forward is required before export) and `export_xmodel`, which writes `DpuPart_int.xmodel` for
`vai_c_xir` (scripts/vitis_ai_quantize.sh compiles it for a chosen arch.json). The CPU part stays float.

Outside the docker image `pytorch_nndct` is missing and ToolNotFoundError says to use the script.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpupose.errors import ArtifactError, ToolNotFoundError

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
