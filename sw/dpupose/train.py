"""Training loop (host only): single process, or several under `torchrun` (DDP: gloo on CPU, nccl on CUDA).

Every sample's augmentation and every epoch's order are pure functions of (seed, epoch, index), and the
checkpoint holds model, optimizer, scheduler and position in the epoch, so `--resume` after a kill continues
to exactly the state an uninterrupted run reaches. Checkpoints are written atomically: `last.pt` at the end
of each epoch and every `checkpoint_minutes` inside one, `best.pt` whenever validation loss improves.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout
from torch.utils.data import DataLoader, Sampler

from dpupose.data.dataset import PoseDataset
from dpupose.data.sources import DEFAULT_SYNTH_TRAIN, Split, load_data
from dpupose.data.transforms import Augment
from dpupose.device import describe, resolve_device
from dpupose.errors import CheckpointError, DataError, UsageError
from dpupose.eval.metrics import MetricAccumulator
from dpupose.fsio import (
    json_text,
    lock_folder,
    lock_output_folder,
    not_a_file,
    read_own_json,
    same_file,
    what_is_at,
    write_bytes,
    write_text,
)
from dpupose.model.checkpoint import model_from_state, read_checkpoint, save_checkpoint
from dpupose.model.losses import pose_loss
from dpupose.model.pose import ModelConfig, PoseNet
from dpupose.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str = "synthetic"
    data_root: str | None = None
    out: str = "runs/default"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "step"  # "step": x lr_gamma every lr_step epochs; "cosine": to 1% over all epochs
    lr_step: int = 80
    lr_gamma: float = 0.5
    js_weight: float = 1.0
    input_size: int = 224
    width_mult: float = 1.0
    num_train: int | None = None  # synthetic only: training images to generate
    num_valid: int | None = None  # synthetic only: validation images (fixed set)
    seed: int = 0
    workers: int = 1
    threads: int | None = None
    init: str | None = None  # weights to start from (e.g. a run at a smaller input size)
    checkpoint_minutes: float = 10.0
    max_steps_per_epoch: int | None = None  # for smoke tests
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N (dpupose.device)


class EpochSampler(Sampler[int]):
    """This rank's share of a seeded per-epoch permutation, starting `skip` samples in."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per_rank = math.ceil(self.n / self.world)
        perm += perm[: per_rank * self.world - self.n]  # pad so every rank gets the same count
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world) - self.skip


def _lr_lambda(cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return lambda e: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(e, cfg.epochs) / max(cfg.epochs, 1)))
    return lambda e: cfg.lr_gamma ** (e // max(cfg.lr_step, 1))


def _setup_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # before the process group, so that nccl uses this process's GPU
        # nccl's own default timeout is 10 minutes: gloo's 30 leave the other processes time to wait at a
        # barrier while rank 0 generates the synthetic set, validates or saves
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=default_pg_timeout)
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _to_device_batch(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """What the network and the loss take, on `device` (the same tensors on the CPU); the image channels_last."""
    moved = {k: batch[k].to(device, non_blocking=True) for k in ("image", "target", "visible")}
    moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
    return moved


def validate(model: PoseNet, loader: DataLoader, cfg: TrainConfig, device: torch.device) -> dict:
    model.eval()
    acc = MetricAccumulator(cfg.input_size)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            moved = _to_device_batch(batch, device)
            coords, heatmaps = model(moved["image"])
            loss = pose_loss(coords, heatmaps, moved["target"], moved["visible"], cfg.js_weight)
            total += float(loss) * len(coords)
            count += len(coords)
            acc.add(
                coords.cpu().numpy(),
                heatmaps.cpu().numpy(),
                batch["target"].numpy(),
                batch["annotated"].numpy(),
                batch["head_size"].numpy(),
            )
    model.train()
    summary = acc.summary()
    return {
        "val_loss": total / max(count, 1),
        **{k: summary[k] for k in ("euclidean", "euclidean_px", "jsd", "pckh@0.5")},
    }


_TRAINING_STATE = ("model", "optimizer", "scheduler", "epoch")
# Settings a resumed run must keep: the data, the network, the order of samples and the learning-rate
# schedule (a changed --lr would be ignored: the optimizer's saved state holds the rate). --epochs may
# change (the cosine schedule then stretches from the next epoch).
_RESUME_FIXED = ("data", "data_root", "input_size", "width_mult", "batch_size", "seed", "num_train", "num_valid")
_RESUME_FIXED += ("schedule", "lr", "lr_step", "lr_gamma", "js_weight")


def _same(key: str, a: object, b: object) -> bool:
    if key in ("data_root", "init") and isinstance(a, str) and isinstance(b, str):
        # By real path, or as one file or folder by device and inode (same_file), as the data root is below: the
        # --init checkpoint through a bind mount of its folder (a container's other path) is the same file.
        return (
            os.path.realpath(a) == os.path.realpath(b) or os.path.normpath(a) == os.path.normpath(b) or same_file(a, b)
        )
    return a == b


def _check_resumable(state: dict, cfg: TrainConfig, path: Path, world: int = 1) -> None:
    missing = [k for k in _TRAINING_STATE if k not in state]
    if missing:
        raise CheckpointError(
            f"--resume: {path} holds no training state ({', '.join(missing)} missing; `dpupose export` writes "
            f"weights only): start a new run from its weights with --init {path} and another --out"
        )
    saved = state.get("args", {})
    keys = [*_RESUME_FIXED, "init"] if cfg.init is not None else _RESUME_FIXED
    where = state.get("data_root_resolved")  # the data root's real path when the run started
    if where is not None and cfg.data_root is not None:
        keys = [k for k in keys if k != "data_root"]  # compared by real path below
    # Every setting that differs, in one line: one at a time, a resume typed again from memory was refused as
    # often as it had settings changed, each refusal naming the next.
    differ = [
        f"{key}={saved[key]!r}, not {getattr(cfg, key)!r}"
        for key in keys
        if key in saved and not _same(key, saved[key], getattr(cfg, key))
    ]
    if differ:
        raise UsageError(
            f"--resume: {path} was trained with {'; '.join(differ)}; "
            "resume with the same settings (only --epochs may change), or start a new --out"
        )
    # The folder it started on, by real path, or, where both are there, as one folder by device and inode (a bind
    # mount of it, the folder a container mounts at another path), which realpath does not see through.
    given = cfg.data_root
    if where is not None and given is not None and not (os.path.realpath(given) == where or same_file(where, given)):
        relative = "" if os.path.isabs(cfg.data_root) else " (a relative --data-root is read from the current folder)"
        raise UsageError(
            f"--resume: {path} was trained on the data in {where}, not in {os.path.realpath(cfg.data_root)}"
            f"{relative}: resume with the same data, or start a new --out"
        )
    saved_world = state.get("world_size")  # absent in checkpoints of earlier versions
    if saved_world is not None and saved_world != world:
        # Each process trains on its share of the epoch (batch --batch-size each, gradients averaged), and a
        # mid-epoch position is a step count within that share: another count of processes would change
        # the batch the optimizer steps on and, inside an epoch, which samples it repeats or skips.
        raise UsageError(
            f"--resume: {path} was trained by {saved_world} process(es), not {world}; resume with the same "
            "number (torchrun --nproc_per_node), or start a new --out"
        )
    done = state["epoch"]  # epochs completed (a mid-epoch save is inside epoch done + 1)
    if cfg.epochs < done:
        raise UsageError(
            f"--resume: {path.parent} has already trained {done} epochs, more than --epochs {cfg.epochs}; "
            f"pass --epochs {done} (nothing left to do) or more to train on"
        )


def _repair_history(out: Path, state: dict) -> None:
    """A kill after last.pt was saved but before history.jsonl was: write the file from the checkpoint."""
    text = _history_text(state.get("history", []))
    try:  # a regular file only: a FIFO there was waited on for ever (write_bytes refuses it, named)
        current = (out / "history.jsonl").read_text() if (out / "history.jsonl").is_file() else None
    except (OSError, UnicodeDecodeError):
        current = None
    if current != text:
        write_bytes(out / "history.jsonl", text.encode())


def _history_text(history: list[dict]) -> str:
    """history.jsonl's text: one line per finished epoch (the file is written whole, atomically)."""
    return "".join(json_text(row) + "\n" for row in history)


def _check_new_run_folder(out: Path) -> None:
    """A new run writes config.json, history.jsonl, best.pt and last.pt into `out`: refuse a folder where
    one of them is an earlier run's result (last.pt: resume it; best.pt or history.jsonl: a run whose
    last.pt was removed) or a config.json `dpupose train` did not write. Other files (notes, logs) stay."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is {what_is_at(out)}, not a folder; choose another --out")
    if (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    results = [name for name in ("best.pt", "history.jsonl") if (out / name).exists()]
    if results:
        raise UsageError(
            f"--out {out} already holds {' and '.join(results)} of an earlier run, which a new run would "
            "overwrite or append to: move them elsewhere, or choose another --out"
        )
    if (out / "config.json").exists():  # a run that stopped before its first epoch leaves only this
        saved = read_own_json(out / "config.json")  # a regular file only: a FIFO there was waited on for ever
        if not isinstance(saved, dict) or not {"data", "epochs", "input_size"} <= saved.keys():
            raise UsageError(
                f"--out {out} holds a config.json that `dpupose train` did not write; choose another --out"
            )


def _read_init(cfg: TrainConfig) -> PoseNet:
    """The --init checkpoint's network, checked against the run's width."""
    assert cfg.init is not None
    try:
        init_model = model_from_state(read_checkpoint(cfg.init, "--init"), cfg.init)
    except CheckpointError as exc:
        raise CheckpointError(str(exc) if str(exc).startswith("--init ") else f"--init: {exc}") from None
    if init_model.config.width_mult != cfg.width_mult:
        raise CheckpointError(
            f"--init {cfg.init} has width {init_model.config.width_mult}, not {cfg.width_mult}: pass --width "
            f"{init_model.config.width_mult} to train on from it, or --init a checkpoint of width {cfg.width_mult}"
        )
    return init_model


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run (or resume) training; returns the run folder."""
    with ExitStack() as lock:  # the run folder's lock, taken once the folder exists
        try:
            return _train(cfg, resume, lock)
        except torch.cuda.OutOfMemoryError:
            raise UsageError(
                f"the GPU ran out of memory at --batch-size {cfg.batch_size} and --input-size {cfg.input_size}: "
                "start again with a lower --batch-size (in a new --out: a resumed run keeps its batch size)"
            ) from None


def _train(cfg: TrainConfig, resume: bool, lock: ExitStack) -> Path:
    if cfg.data not in ("synthetic", "mpii"):
        raise UsageError(f"unknown data set {cfg.data!r}; use synthetic or mpii")
    if cfg.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    device = resolve_device(cfg.device)  # before the process group: its backend depends on the device
    rank, world = _setup_distributed(device)
    if rank == 0:
        log.info("training on %s", describe(device, cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    last = out / "last.pt"
    locked = rank == 0 and out.is_dir()
    if locked:  # two runs writing one folder would mix their checkpoints, config and history
        lock.enter_context(lock_folder(out, "dpupose train"))
    # Everything cheap is checked before the data (generating the synthetic set takes minutes).
    state: dict | None = None
    init_model: PoseNet | None = None
    if resume:
        if not last.exists():  # a link that leads nowhere is named as one, not 'not found', which the user can see
            raise UsageError(f"--resume: {last} {not_a_file(last, 'not found')}; start the run without --resume")
        state = read_checkpoint(last)
        _check_resumable(state, cfg, last, world)
        if state["epoch"] >= cfg.epochs:  # finished: nothing to load or train
            if rank == 0:
                log.info("%s has trained its %d epochs; nothing to do", out, cfg.epochs)
                _repair_history(out, state)
            if world > 1:
                dist.destroy_process_group()
            return out
    else:
        _check_new_run_folder(out)
        if cfg.init:
            init_model = _read_init(cfg)

    # A generated synthetic set holds --num-train records: a --batch-size above its share is refused now, not
    # after minutes of generating the validation set (the same check on the records read follows the data).
    if cfg.data == "synthetic" and cfg.data_root is None:
        per_process = math.ceil((cfg.num_train or DEFAULT_SYNTH_TRAIN) / world)
        if per_process < cfg.batch_size:
            raise UsageError(
                f"--batch-size {cfg.batch_size} is larger than the {per_process} training records per process: an "
                "epoch would make no step; lower --batch-size or use more training data"
            )
    # Data: rank 0 generates/caches synthetic data first; the others wait and then read it.
    if rank == 0:
        train_split, val_split = _load_splits(cfg, quiet=False)
    if world > 1:
        dist.barrier()
    if rank != 0:
        train_split, val_split = _load_splits(cfg, quiet=True)
    if rank == 0:
        for option, count, split in (
            ("--num-train", cfg.num_train, train_split),
            ("--num-valid", cfg.num_valid, val_split),
        ):
            if count is not None and cfg.data == "mpii":
                log.warning("%s %d is ignored for --data mpii (it sizes the synthetic set)", option, count)
            elif count is not None and len(split.records) < count:
                log.warning("%s %d: %s holds only %d; using those", option, count, split.root, len(split.records))
        # What the run learns from and is measured on, and where its PCKh's head sizes come from.
        log.info("training: %d records from %s", len(train_split.records), train_split.root)
        log.info("validation: %s", describe_split(val_split))
    for name, split in (("training", train_split), ("validation", val_split)):
        if not any(r.visible.any() for r in split.records):
            raise DataError(
                f"no {name} record in {split.root} has an annotated joint, so there is nothing to learn or "
                "measure: check the annotations' joints_vis and coordinates (negative ones mean unannotated)"
            )
    train_set = PoseDataset(train_split.records, train_split.image_dir, cfg.input_size, Augment(), cfg.seed)
    val_set = PoseDataset(val_split.records, val_split.image_dir, cfg.input_size, None, cfg.seed)
    sampler = EpochSampler(len(train_set), cfg.seed, rank, world)
    if len(sampler) < cfg.batch_size:
        raise UsageError(
            f"--batch-size {cfg.batch_size} is larger than the {len(sampler)} training records per process: an "
            "epoch would make no step; lower --batch-size or use more training data"
        )

    torch.manual_seed(cfg.seed)
    model = PoseNet(ModelConfig(input_size=cfg.input_size, width_mult=cfg.width_mult))
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
        del init_model
    model = model.to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    history: list[dict] = []
    best = float("inf")
    start_epoch, start_step = 0, 0
    if state is not None:  # read onto the CPU; copied into the parameters and the optimizer on `device`
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("step_in_epoch", 0) == 0:
            # An epoch about to start trains at this run's schedule: the saved optimizer holds the rate the
            # saved run's schedule set, which for a cosine stretched by a larger --epochs is not this one's
            # (a finished run extended trained its next epoch at the old schedule's last 1%). Inside an epoch
            # the rate it started at stays.
            e = scheduler.last_epoch
            for group, base, rate in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
                group["lr"] = base * rate(e)
        history = state.get("history", [])
        best = state.get("best_val_loss", float("inf"))
        start_epoch, start_step = state["epoch"], state.get("step_in_epoch", 0)
        if rank == 0:
            log.info("resuming %s at epoch %d, step %d", out, start_epoch + 1, start_step)
    net: torch.nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    data_root_resolved = os.path.realpath(cfg.data_root) if cfg.data_root else None
    if state is not None and cfg.data_root and state.get("data_root_resolved"):
        # the folder the run started on, kept: a resume through a bind mount of it (same_file) records the
        # folder, not the mount, which the next resume may find gone or empty
        data_root_resolved = state["data_root_resolved"]
    running: list[float] = []  # this epoch's step losses (saved with a mid-epoch checkpoint)
    if state is not None and start_step > 0:
        running.extend(state.get("epoch_losses", []))

    def snapshot(epoch: int, step: int) -> dict:
        return {
            "model": model.state_dict(),
            "model_config": model.config.to_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step,
            "history": history,
            "best_val_loss": best,
            "args": asdict(cfg),
            "data_root_resolved": data_root_resolved,
            "world_size": world,
            "epoch_losses": list(running) if step > 0 else [],
        }

    if rank == 0:
        if not locked:  # made by this run (or by another one started at the same time); removed if refused
            lock.enter_context(lock_output_folder(out, "dpupose train"))
            if state is None:
                _check_new_run_folder(out)  # what another run put there meanwhile
        write_text(out / "config.json", json_text(asdict(cfg), indent=2))  # atomically: a resume rewrites it
    pin = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers, pin_memory=pin)
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        skip = start_step * cfg.batch_size if epoch == start_epoch else 0
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch, skip)
        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=True,
            pin_memory=pin,
        )
        steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
        step = epoch_start = start_step if epoch == start_epoch else 0
        desc = f"epoch {epoch + 1}/{cfg.epochs}"
        bar = Progress(epoch_start + steps, desc, "batch", initial=epoch_start) if rank == 0 else None
        if epoch != start_epoch or start_step == 0:
            running.clear()
        epoch_lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trains at
        last_save = time.monotonic()
        for batch in loader:
            if step - epoch_start >= steps:
                break
            batch = _to_device_batch(batch, device)
            coords, heatmaps = net(batch["image"])
            loss = pose_loss(coords, heatmaps, batch["target"], batch["visible"], cfg.js_weight)
            if not torch.isfinite(loss):
                raise UsageError(
                    f"the loss became {loss.item()} at epoch {epoch + 1}: training diverged; start again with a "
                    "lower --lr (in a new --out; --init from this run's best.pt keeps what it learned)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running.append(loss.item())
            if bar:
                bar.update(1, f"loss {np.mean(running[-50:]):.4f}")
            if rank == 0 and time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                save_checkpoint(snapshot(epoch, step), last)
                last_save = time.monotonic()
        if bar:
            bar.close()
        scheduler.step()
        if world > 1:
            dist.barrier()
        if rank == 0:
            metrics = validate(model, val_loader, cfg, device)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(running)) if running else None,
                "lr": epoch_lr,
                **metrics,
            }
            history.append(row)
            improved = metrics["val_loss"] < best
            best = min(best, metrics["val_loss"])
            # best.pt before last.pt: a kill between the two repeats the epoch (and rewrites best.pt the
            # same way), never skips it; history.jsonl is rewritten from the saved history.
            if improved:
                save_checkpoint(snapshot(epoch + 1, 0), out / "best.pt")
            save_checkpoint(snapshot(epoch + 1, 0), last)
            write_bytes(out / "history.jsonl", _history_text(history).encode())
            log.info(
                "epoch %d: train %.4f  val %.4f  euclidean %.4f (%.2f px)  PCKh@0.5 %s%s",
                epoch + 1,
                row["train_loss"] if row["train_loss"] is not None else float("nan"),
                metrics["val_loss"],
                metrics["euclidean"],
                metrics["euclidean_px"],
                f"{metrics['pckh@0.5']:.3f}" if metrics["pckh@0.5"] is not None else "-",
                "  (best)" if improved else "",
            )
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return out


def _load_splits(cfg: TrainConfig, quiet: bool) -> tuple[Split, Split]:
    """The training and validation splits. quiet (processes other than rank 0): without the loader's notes and
    warnings (which file gave the records, the .mat's hold-out, a .mat a folder too deep), which rank 0 has
    given for the same files; its refusals are exceptions, which every process raises."""
    loader = logging.getLogger("dpupose.data")
    level = loader.level
    if quiet:
        loader.setLevel(max(logging.ERROR, level))
    try:
        return (
            load_data(cfg.data, "train", cfg.data_root, cfg.num_train, cfg.seed),
            load_data(cfg.data, "valid", cfg.data_root, cfg.num_valid, cfg.seed),
        )
    finally:
        loader.setLevel(level)


def describe_split(split: Split) -> str:
    return f"{len(split.records)} records from {split.root} (head sizes: {split.head_size_note()})"
