"""A torch Dataset of person crops from records (host only).

Augmentation is a pure function of (seed, epoch, index), so a run resumed after a kill sees exactly the
samples an uninterrupted run would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dpupose.data.records import PoseRecord, check_images, read_rgb
from dpupose.data.transforms import Augment, crop_person, normalize, to_normalized
from dpupose.errors import DataError

__all__ = ["PoseDataset", "check_images", "read_rgb"]  # the image readers, torch-free, live in records


class PoseDataset(Dataset):
    def __init__(
        self,
        records: list[PoseRecord],
        image_dir: str | Path,
        input_size: int,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        if not records:
            raise DataError("the data set is empty")
        self.records = records
        self.image_dir = Path(image_dir)
        check_images(records, self.image_dir)
        self.input_size = input_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rec = self.records[index]
        image = read_rgb(self.image_dir / rec.image)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        crop, pts, vis, px_scale = crop_person(
            image, rec.center, rec.scale, rec.joints, rec.visible, self.input_size, rng, self.augment
        )
        head = rec.head_size * px_scale if rec.head_size else -1.0
        # What the metrics count: every annotated joint, inside the crop or not, as MPII's evaluation does
        # (the loss uses `visible`, the annotated joints inside the crop). Unaugmented crops are not flipped.
        annotated = rec.visible if self.augment is None else vis
        return {
            "image": torch.from_numpy(normalize(crop)),
            "target": torch.from_numpy(to_normalized(pts, self.input_size).astype(np.float32)),
            "visible": torch.from_numpy(vis.astype(np.float32)),
            "annotated": torch.from_numpy(np.asarray(annotated, np.float32)),
            "head_size": torch.tensor(head, dtype=torch.float32),  # crop pixels, -1 if unknown
            "index": torch.tensor(index),
        }
