"""Cached model preparation for `dpupose bench` and `make demo` (host only): checkpoint -> quantized
folder -> split plan, each kept under build/cache/ and reused while its inputs are unchanged.

- `quantized(checkpoint)`: `dpupose quantize` into build/cache/quantized/<stem>-<key>/, key = sha256 of the
  checkpoint file, the quantization settings (calibration data, sample count, batch size, seed) and the
  dpupose version (another version's quantizer may calibrate or fold differently: not reused after an update).
- `split_plan(quantized_dir, config)`: `dpupose split --optimize` into build/cache/split/<folder>-<config>-v<version>/,
  reused while its plan.json names the same model_qdq.onnx (sha256) and configuration.
- `standin_checkpoint(path)`: a randomly initialised pose network whose BatchNorm statistics are measured
  on random images (so its activations have a sane range for INT8), for demos before a trained model
  exists. Its keypoints are meaningless; every caller says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from dpupose import __version__
from dpupose.fsio import cache_lock, sha256_file

log = logging.getLogger(__name__)

CACHE = Path("build") / "cache"  # apart from the folders users name (build/split in the README)


@dataclass(frozen=True)
class QuantSettings:
    num_calib: int = 32
    batch_size: int = 8
    calib_data: str = "synthetic"
    summary_samples: int = 2
    seed: int = 0


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def quantized(checkpoint: Path, settings: QuantSettings | None = None, cache: Path = CACHE) -> Path:
    """The `dpupose quantize` folder of `checkpoint` (made on first use)."""
    from dpupose.model.checkpoint import check_checkpoint_path

    # Not a checkpoint by what it is (an ONNX file, a folder): said now, before "quantizing" is logged and a
    # cache folder and its lock are made for it.
    check_checkpoint_path(checkpoint)
    settings = settings or QuantSettings()
    key = _key(sha256_file(checkpoint), json.dumps(asdict(settings), sort_keys=True), __version__)
    out = cache / "quantized" / f"{checkpoint.stem}-{key}"
    if (out / "summary.json").is_file() and (out / "model_qdq.onnx").is_file():
        log.info("using the cached quantized model %s", out)
        return out
    with cache_lock(out):  # another process quantizing it at once (make -j, two demos): wait, then use its folder
        if (out / "summary.json").is_file() and (out / "model_qdq.onnx").is_file():
            log.info("using the cached quantized model %s", out)
            return out
        log.info("quantizing %s into %s", checkpoint, out)
        _quantize(checkpoint, out, settings)
    return out


def _quantize(checkpoint: Path, out: Path, settings: QuantSettings) -> None:
    from dpupose.quant.pipeline import QuantizeConfig, quantize

    with _torch_threads(1):  # one thread is faster than oversubscribed ones on a small, busy machine
        quantize(
            QuantizeConfig(
                checkpoint=checkpoint,
                out=out,
                calib_data=settings.calib_data,
                num_calib=settings.num_calib,
                batch_size=settings.batch_size,
                summary_samples=settings.summary_samples,
                seed=settings.seed,
            )
        )


def _path_tag(config: str) -> str:
    """A cache folder name for a configuration given as a TOML path: its stem and a digest of its text."""
    import hashlib

    path = Path(config)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8] if path.is_file() else "missing"
    return f"{path.stem}-{digest}"


def split_plan(quantized_dir: Path, config: str, optimize: bool = True, cache: Path = CACHE) -> Path:
    """The split plan folder of `quantized_dir/model_qdq.onnx` for `config` (made on first use)."""
    from dpupose.dpu.config import load_config
    from dpupose.errors import ModelFileError
    from dpupose.split.partition import SplitOptions, split_model
    from dpupose.split.plan import load_plan

    cfg = load_config(config)  # a bad name or file is reported before any work
    model = quantized_dir / "model_qdq.onnx"
    tag = config if "/" not in config and not config.endswith(".toml") else _path_tag(config)
    out = cache / "split" / f"{quantized_dir.name}-{tag}{'-opt' if optimize else ''}-v{__version__}"

    def cached() -> bool:
        if not (out / "plan.json").is_file():
            return False
        try:
            plan = load_plan(out)
        except ModelFileError:
            return False
        same_config = plan.dpu_config == cfg.name and plan.metadata.get("dpu_config_options") == cfg.to_dict()
        if plan.split_from(model) and same_config:
            log.info("using the cached split plan %s", out)
            return True
        return False

    if cached():
        return out
    with cache_lock(out):  # another process splitting it at once: wait for it, then use its plan
        if not cached():
            _drop_unreadable_plan(out)
            split_model(SplitOptions(model, config, out, optimize=optimize))
    return out


def _drop_unreadable_plan(out: Path) -> None:
    """Remove a cache folder whose plan.json cannot be read (cut short by a full disk, an interrupted run):
    split refuses to write over such a folder, as it cannot tell its files from a user's, and says to remove
    it or choose another --out, which bench and the demo cannot take. The folder is the cache's own (named
    by split_plan, under the lock), so it is made again in its place. It is removed by fsio.remove_dir: a kill
    while it goes leaves no folder of some of its files there, which split would refuse for good."""
    from dpupose.errors import ModelFileError
    from dpupose.fsio import remove_dir
    from dpupose.split.plan import load_plan

    if not (out / "plan.json").is_file():
        return
    try:
        load_plan(out)
    except ModelFileError as exc:
        log.warning("the cached split plan %s cannot be read (%s); splitting again", out, exc)
        remove_dir(out)


class _torch_threads:
    def __init__(self, n: int) -> None:
        self.n = n
        self.old: int | None = None

    def __enter__(self) -> None:
        import torch

        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.old is not None:
            torch.set_num_threads(self.old)


def sane_random_model(cfg, seed: int = 0):
    """A PoseNet with random weights whose BatchNorm statistics are measured on random images, so that
    activations stay O(1) through the network (a plain random init saturates INT8 within a few layers)."""
    import torch

    from dpupose.model.pose import build_model

    torch.manual_seed(seed)
    model = build_model(cfg).train()
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative average over the passes below
            mod.reset_running_stats()
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, cfg.input_size, cfg.input_size))
    return model.eval()


def standin_checkpoint(path: Path, input_size: int = 224, seed: int = 0) -> Path:
    """A randomly initialised checkpoint with measured BatchNorm statistics (module docstring)."""
    from dpupose.model.checkpoint import save_checkpoint
    from dpupose.model.pose import ModelConfig

    if path.is_file():
        return path
    with _torch_threads(1):
        model = sane_random_model(ModelConfig(input_size=input_size), seed)
        state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "epoch": 0, "standin": True}
        return save_checkpoint(state, path)
