"""Synthetic pose data: one articulated figure per scene, written as a data root in the MPII JSON layout
(`images/`, `annot/train.json`, `annot/valid.json`) so training and evaluation use the MPII code path.

Every image is a pure function of (seed, split, index): the validation set is fixed and disjoint from the
training set (different split ids in the random stream), so every number on it is reproducible.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from dpupose.data.figure import random_figure
from dpupose.data.joints import NUM_JOINTS, J
from dpupose.data.render import (
    background,
    capsule_mask,
    draw_figure,
    fill_new_texture,
    random_colour,
    skin_colour,
)
from dpupose.errors import DataError, shortlist
from dpupose.fsio import atomic_dir, check_replaceable, read_own_json, refuse_current_folder
from dpupose.runtime.imagefile import write_jpeg

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
SPLIT_IDS = {"train": 1, "valid": 2, "sample": 3}
CHUNK = 200  # scenes per task of a rendering process
CHUNKS_PER_WORKER = 2  # tasks submitted ahead per process: one rendering, one waiting


@dataclass(frozen=True)
class SynthSpec:
    """What a synthetic data root holds; a root is reused only when its spec matches exactly."""

    seed: int = 0
    num_train: int = 20000
    num_valid: int = 1000
    image_size: int = 256
    version: int = GENERATOR_VERSION

    def counts(self) -> dict[str, int]:
        return {"train": self.num_train, "valid": self.num_valid}


def _project(
    points3d: np.ndarray, px_per_unit: float, centre: np.ndarray, roll: float, extra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic projection, in-plane roll, joints' box centred at `centre`; `extra` points ride along."""
    allpts = points3d if extra is None else np.concatenate([points3d, extra])
    xy = np.stack([allpts[:, 0], -allpts[:, 1]], axis=1) * px_per_unit
    c, s = np.cos(roll), np.sin(roll)
    xy = xy @ np.array([[c, -s], [s, c]]).T
    n = len(points3d)
    mid = 0.5 * (xy[:n].min(axis=0) + xy[:n].max(axis=0))
    xy = xy - mid + centre
    return xy[:n], xy[n:]


def render_scene(seed: int, split: str, index: int, size: int = 256) -> tuple[np.ndarray, dict]:
    """One scene: RGB uint8 image (size, size, 3) and its annotation record (without the image name)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    img = background(rng, size)

    # Sometimes a second, partial person behind the main one (as in crowded MPII scenes).
    if rng.random() < 0.2:
        other = random_figure(rng)
        px = size * rng.uniform(0.4, 0.8)
        opts, otoes = _project(other.joints, px, rng.uniform(-0.1, 1.1, 2) * size, rng.uniform(-0.4, 0.4), other.toes)
        draw_figure(img, other, opts, px, rng, otoes)

    fig = random_figure(rng)
    # Scale the body so its joint extent fills 45-80% of the frame.
    probe, _ = _project(fig.joints, 1.0, np.zeros(2), 0.0)
    extent = max(np.ptp(probe[:, 0]), np.ptp(probe[:, 1]), 0.3)
    px_per_unit = size * rng.uniform(0.45, 0.8) / extent
    roll = rng.normal(0, 0.25) if rng.random() < 0.9 else rng.uniform(-np.pi / 2, np.pi / 2)
    centre = size * (0.5 + rng.uniform(-0.12, 0.12, 2))
    pts, toes = _project(fig.joints, px_per_unit, centre, roll, fig.toes)
    draw_figure(img, fig, pts, px_per_unit, rng, toes)

    # Distractor limbs and occluders in front of the figure.
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(0, 3)):
        mask[:] = 0
        a = rng.uniform(0, size, 2)
        b = a + rng.normal(0, size * 0.15, 2)
        r = px_per_unit * rng.uniform(0.015, 0.04)
        capsule_mask(mask, a, b, r, r * 0.8)
        tex = np.empty((size, size, 3), np.float32)
        tex[:] = skin_colour(rng) if rng.random() < 0.5 else random_colour(rng)
        img[mask > 0] = tex[mask > 0]
    if rng.random() < 0.35:
        mask[:] = 0
        target = pts[rng.integers(NUM_JOINTS)]
        w, h = rng.uniform(0.06, 0.22, 2) * size
        box = cv2.boxPoints(((float(target[0]), float(target[1])), (float(w), float(h)), float(rng.uniform(0, 90))))
        cv2.fillConvexPoly(mask, box.astype(np.int32), 255)
        fill_new_texture(img, mask, rng)

    # Lighting, blur and sensor noise.
    img = img * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    img = img + rng.normal(0, rng.uniform(0, 8), img.shape)
    image = np.clip(img, 0, 255).astype(np.uint8)

    inside = (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    head_len = float(np.linalg.norm(pts[J["head_top"]] - pts[J["upper_neck"]]))
    head_mid = 0.5 * (pts[J["head_top"]] + pts[J["upper_neck"]])
    record = {
        "center": [round(float(v), 2) for v in 0.5 * (lo + hi)],
        "scale": round(float(max(hi - lo)) * 1.15 / 200.0, 4),
        "joints": [[round(float(x), 2), round(float(y), 2)] for x, y in pts],
        "joints_vis": [int(v) for v in inside],
        # A square head box of the head segment's length: head size = 0.6 * its diagonal, as in MPII.
        "head_box": [round(float(v), 2) for v in (*(head_mid - head_len / 2), *(head_mid + head_len / 2))],
    }
    return image, record


_stop_event: Event | None = None  # in a rendering process: set by the parent when the generation stops early


def _start_worker(stop: Event) -> None:
    """Initializer of a rendering process: the parent stops it through `stop` (it ends its chunk after the
    scene it is rendering). Ctrl-C, which reaches the whole process group, is the parent's alone: the process
    started with it blocked (_submit), and ignores it from now on."""
    global _stop_event
    _stop_event = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    """End this rendering process when the parent dies (kill -9, the OOM killer): it would finish its chunk
    into the abandoned folder and then wait forever to hand over the result."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def _render_chunk(args: tuple[int, str, int, int, int, str]) -> list[dict]:
    seed, split, start, stop, size, image_dir = args
    cv2.setNumThreads(1)
    records = []
    for i in range(start, stop):
        if _stop_event is not None and _stop_event.is_set():
            break  # the parent is removing the unfinished set: what this chunk returns is not read
        image, rec = render_scene(seed, split, i, size)
        name = f"{split}_{i:06d}.jpg"
        quality = 70 + (i * 7919 + seed) % 26  # varied, deterministic JPEG quality
        # write_jpeg, not cv2.imwrite: imwrite returns False on a full disk, and the set was then kept
        # without the images its annotations list (same bytes: both encode with OpenCV's JPEG encoder).
        if not write_jpeg(os.path.join(image_dir, name), image[..., ::-1], quality):
            raise DataError(f"OpenCV cannot encode the synthetic scene {name} as JPEG")
        records.append({"image": name, **rec})
    return records


# Scene names are {split}_{index:06d}.jpg: seven digits and more from the millionth scene on.
_GENERATED = {"images": re.compile(r"(train|valid)_\d{6,}\.jpg"), "annot": re.compile(r"(train|valid)\.json")}


def _check_only_generated(root: Path) -> None:
    """An earlier synthetic root is replaced whole: its images/ and annot/ must hold only generated files
    (a photo or notes put there would be deleted with it)."""
    from dpupose.errors import UsageError

    for sub, pattern in _GENERATED.items():
        folder = root / sub
        if not folder.is_dir():
            continue
        foreign = sorted(p.name for p in folder.iterdir() if not (p.is_file() and pattern.fullmatch(p.name)))
        if foreign:
            shown = shortlist(foreign)
            raise UsageError(
                f"{root} is a synthetic data root, but {sub}/ also holds {shown}, which replacing it would "
                f"delete: move {'it' if len(foreign) == 1 else 'them'} elsewhere, or choose another folder"
            )


def _submit(pool: ProcessPoolExecutor, chunk: tuple) -> Future:
    """pool.submit of `chunk` with Ctrl-C held back. A rendering process the submission starts inherits SIGINT
    blocked, so that a Ctrl-C during its seconds of imports cannot end it with a traceback; here a Ctrl-C
    (which another thread, OpenBLAS's, may take for the process) is only noted, and raised once the process
    is started, not half way (its imports then end in a traceback too)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        return pool.submit(_render_chunk, chunk)
    noted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: noted.append(signum))
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(_render_chunk, chunk)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        signal.signal(signal.SIGINT, previous)
        if noted:
            signal.raise_signal(signal.SIGINT)  # to the handler there was: Ctrl-C as if it came now


def _in_order(pool: ProcessPoolExecutor, chunks: Iterable[tuple], ahead: int) -> Iterator[list[dict]]:
    """_render_chunk of each of `chunks` in order, with at most `ahead` chunks submitted at a time (all at once,
    the largest counts are millions of tasks held in memory before the first scene is rendered)."""
    todo = iter(chunks)
    pending: deque[Future] = deque()
    while True:
        while len(pending) < ahead and (chunk := next(todo, None)) is not None:
            pending.append(_submit(pool, chunk))
        if not pending:
            return
        yield pending.popleft().result()


def generate(
    root: str | Path,
    spec: SynthSpec,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic data root at `root` (atomically, with dpupose.fsio.atomic_dir). An existing
    folder there is replaced only if it is empty or an earlier synthetic data root (has synthetic.json)."""
    root = Path(root)
    refuse_current_folder(root)
    check_replaceable(root, "synthetic.json", ("images", "annot"), "a synthetic data root", option="folder")
    _check_only_generated(root)
    with atomic_dir(root) as tmp:  # a folder already there goes only once the new root is in place
        (tmp / "images").mkdir()
        (tmp / "annot").mkdir()
        workers = workers or min(2, os.cpu_count() or 1)
        total = sum(spec.counts().values())
        done = 0
        if progress:  # the start: a bar made at the first call times the whole generation, not its first chunk
            progress(0, total)
        # spawn, not fork: a child forked after the parent used OpenCV's thread pool can wait forever.
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(stop,)) as pool:
            try:
                for split, n in spec.counts().items():
                    chunks = (
                        (spec.seed, split, s, min(s + CHUNK, n), spec.image_size, str(tmp / "images"))
                        for s in range(0, n, CHUNK)
                    )
                    records: list[dict] = []
                    for recs in _in_order(pool, chunks, CHUNKS_PER_WORKER * workers):
                        records += recs
                        done += len(recs)
                        if progress:
                            progress(done, total)
                    (tmp / "annot" / f"{split}.json").write_text(json.dumps(records))
            except BaseException:  # Ctrl-C, SIGTERM, a full disk: the chunks under way end at their scene,
                stop.set()  # those not started never start, and the workers are gone before the folder goes
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        (tmp / "synthetic.json").write_text(json.dumps(asdict(spec), indent=2))
    return root


def ensure(root: str | Path, spec: SynthSpec, progress: Callable[[int, int], None] | None = None) -> Path:
    """Return a data root holding `spec`, generating it when missing or different."""
    root = Path(root)
    meta = root / "synthetic.json"
    if meta.is_file():
        if read_own_json(meta) == asdict(spec):
            return root
        log.info("synthetic data at %s was made with other settings; regenerating", root)
    log.info("generating synthetic data (%d train, %d valid) in %s", spec.num_train, spec.num_valid, root)
    return generate(root, spec, progress=progress)
