"""Evaluation of any predictor on a data split (host side: builds the crops with the data package).

A predictor maps a float32 batch (N, 3, S, S), ImageNet-normalized, to (coords (N, 16, 2) normalized,
heatmaps (N, 16, S/4, S/4)). Engines (FP32 torch, INT8 emulated DPU, ONNX Runtime) plug in here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dpupose.data.records import PoseRecord
from dpupose.data.transforms import crop_person, normalize, to_normalized
from dpupose.errors import CheckpointError
from dpupose.eval.dsnt_np import DECODERS, local_dsnt
from dpupose.eval.metrics import MetricAccumulator
from dpupose.progress import Progress

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def iter_batches(records: list[PoseRecord], image_dir, input_size: int, batch_size: int):
    """(images (N,3,S,S) float32, targets (N,16,2), annotated (N,16), head sizes (N,) crop px) per batch.

    A joint counts when it is annotated, inside the crop or not: MPII's evaluation (evaluatePCKh.m, as
    HRNet's and pytorch-pose's evaluate it) scores every annotated joint, and one outside the crop is a
    miss the network cannot avoid, not a joint to leave out (the training loss leaves such joints out)."""
    from dpupose.data.records import check_images, read_rgb

    check_images(records, image_dir)
    for start in range(0, len(records), batch_size):
        imgs, tgts, viss, heads = [], [], [], []
        for rec in records[start : start + batch_size]:
            image = read_rgb(image_dir / rec.image)
            crop, pts, _, px_scale = crop_person(image, rec.center, rec.scale, rec.joints, rec.visible, input_size)
            imgs.append(normalize(crop))
            tgts.append(to_normalized(pts, input_size))
            viss.append(rec.visible.copy())  # no augmentation here: the crop is not flipped
            heads.append(rec.head_size * px_scale if rec.head_size else -1.0)
        yield np.stack(imgs), np.stack(tgts), np.stack(viss), np.array(heads, np.float64)


def evaluate(
    predict: Predictor,
    records: list[PoseRecord],
    image_dir,
    input_size: int,
    batch_size: int = 16,
    desc: str = "eval",
    decode: str = "dsnt",
) -> dict:
    """Metrics of `predict` on `records`; `decode` "local" re-reads the coordinates from the predicted
    heatmaps (dpupose.eval.dsnt_np.local_dsnt) in place of the predictor's DSNT coordinates."""
    if decode not in DECODERS:
        raise ValueError(f"unknown decoder {decode!r}; use one of: {', '.join(DECODERS)}")
    acc = MetricAccumulator(input_size)
    with Progress(len(records), desc, "img") as bar:
        for images, targets, visible, heads in iter_batches(records, image_dir, input_size, batch_size):
            coords, heatmaps = predict(images)
            if not np.isfinite(coords).all():
                raise CheckpointError(
                    "the model predicts NaN or infinite coordinates: its weights are damaged (a diverged "
                    "training run?); evaluate an earlier checkpoint, or train again"
                )
            if decode == "local":
                coords = local_dsnt(heatmaps)
            acc.add(coords, heatmaps, targets, visible, heads)
            bar.update(len(images))
    return acc.summary()


def flip_averaged(predict: Predictor) -> Predictor:
    """`predict` with test-time flip averaging: each heatmap is averaged with that of the mirrored image,
    mirrored back and with left and right joints swapped; the coordinates are the DSNT of the average.
    Twice the inference per image. In the heatmaps' own coordinates (pixel centres, as DSNT reads them),
    column j of the mirrored image's map is column W-1-j of the original's."""
    from dpupose.data.joints import flip_permutation
    from dpupose.eval.dsnt_np import dsnt

    perm = flip_permutation()

    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, heatmaps = predict(images)
        _, mirrored = predict(np.ascontiguousarray(images[..., ::-1]))
        average = 0.5 * (heatmaps + mirrored[:, perm, :, ::-1])
        return dsnt(average), average

    return run


def torch_predictor(model, threads: int | None = None, device=None) -> Predictor:
    """FP32 predictor from a PoseNet, run on `device` (a torch.device; default the CPU); numpy in and out."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    device = device or torch.device("cpu")
    model = model.to(device).eval()

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            coords, heatmaps = model(torch.from_numpy(images).to(device))
        return coords.cpu().numpy(), heatmaps.cpu().numpy()

    return predict
