"""Which torch device `dpupose train` and `dpupose eval` compute on (host only): `--device auto|cpu|cuda|cuda:N`.

auto takes the GPU when this PyTorch has CUDA and sees one, else the CPU. Under torchrun each process
takes the GPU of its LOCAL_RANK. Checkpoints are device-neutral whatever the device: they are saved from
CPU copies of the tensors and read with map_location="cpu" (dpupose.model.checkpoint).
"""

from __future__ import annotations

import os

import torch

from dpupose.errors import UsageError

INSTALL_CUDA = (
    "install a CUDA build of torch into a new environment (rm -rf .venv && make setup "
    "TORCH_INDEX=https://download.pytorch.org/whl/cu126; see docs/training.md), or pass --device cpu"
)


def _no_cuda(spec: str) -> UsageError:
    """Why `spec` cannot be had: a CPU-only build, or a GPU build (CUDA, or ROCm: torch.version.hip, answering
    through torch.cuda too) that sees no GPU, with the driver's tool and the variable that hides GPUs for it."""
    if getattr(torch.version, "hip", None) is not None:
        return UsageError(
            f"--device {spec}: this PyTorch ({torch.__version__}) has ROCm but sees no GPU: check the driver "
            "(rocm-smi) and HIP_VISIBLE_DEVICES, or pass --device cpu"
        )
    if torch.version.cuda is None:
        return UsageError(f"--device {spec}: this PyTorch ({torch.__version__}) is a CPU-only build; {INSTALL_CUDA}")
    return UsageError(
        f"--device {spec}: this PyTorch ({torch.__version__}) has CUDA but sees no GPU: check the driver "
        "(nvidia-smi) and CUDA_VISIBLE_DEVICES, or pass --device cpu"
    )


def resolve_device(spec: str) -> torch.device:
    """The torch.device for `spec` (auto, cpu, cuda or cuda:N; the CLI has checked its form), or UsageError
    when CUDA is asked for and cannot be had. Under torchrun (WORLD_SIZE > 1) cuda means cuda:LOCAL_RANK."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise _no_cuda(spec)
    count = torch.cuda.device_count()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if spec.startswith("cuda:"):
        index = int(spec.split(":", 1)[1])
        if distributed:
            raise UsageError(
                f"--device {spec}: under torchrun each process takes the GPU of its LOCAL_RANK; pass --device "
                "cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES"
            )
        if index >= count:
            raise UsageError(
                f"--device {spec}: this machine has {count} visible GPU(s), cuda:0 to cuda:{count - 1}; pass "
                "one of those (or --device cuda)"
            )
        return torch.device("cuda", index)
    index = int(os.environ.get("LOCAL_RANK", "0")) if distributed else 0
    if index >= count:
        raise UsageError(
            f"--device {spec}: torchrun started process LOCAL_RANK={index}, but this machine has {count} "
            f"visible GPU(s): start at most {count} processes per node (--nproc_per_node)"
        )
    return torch.device("cuda", index)


def describe(device: torch.device, spec: str) -> str:
    """For the log line at start: 'cuda:0 (NVIDIA ...)', or 'the CPU' (and why, for auto)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if spec == "auto":
        return "the CPU (--device auto: no CUDA GPU visible to this PyTorch)"
    return "the CPU"
