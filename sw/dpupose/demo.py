"""`make demo`: the shipped model on fixed synthetic validation samples -> annotated images and metrics
under build/demo/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODEL = Path("models") / "dpupose-synth" / "model.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpupose.demo", description=__doc__)
    parser.add_argument("--out", default="build/demo")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=8)
    args = parser.parse_args(argv)

    import cv2
    import numpy as np

    from dpupose.data.sources import load_data
    from dpupose.data.transforms import IMAGENET_MEAN, IMAGENET_STD, from_normalized
    from dpupose.errors import DpuposeError
    from dpupose.eval.evaluate import evaluate, iter_batches, torch_predictor
    from dpupose.eval.metrics import format_table
    from dpupose.model.checkpoint import load_checkpoint
    from dpupose.runtime.draw import draw_label, draw_skeleton

    try:
        model, _ = load_checkpoint(args.model)
        split = load_data("synthetic", "valid", None, count=args.num_samples)
        size = model.config.input_size
        predict = torch_predictor(model)
        summary = evaluate(predict, split.records, split.image_dir, size, desc="demo eval")
    except DpuposeError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, *_ = next(iter_batches(split.records[: args.num_images], split.image_dir, size, args.num_images))
    coords, _ = predict(images)
    tiles = []
    for i, (img, xy) in enumerate(zip(images, coords)):
        rgb = ((img.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255).clip(0, 255).astype(np.uint8)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        draw_skeleton(bgr, from_normalized(xy, size))
        draw_label(bgr, f"sample {i}")
        cv2.imwrite(str(out / f"sample_{i:02d}.jpg"), bgr)
        tiles.append(bgr)
    cv2.imwrite(str(out / "samples.jpg"), np.concatenate(tiles, axis=1))
    (out / "metrics.json").write_text(json.dumps({"model": args.model, "engine": "fp32", **summary}, indent=2))
    print(format_table(summary))
    print(f"annotated images and metrics.json in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
