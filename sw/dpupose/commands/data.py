"""`dpupose data`: generate the synthetic data set, inspect a data root."""

from __future__ import annotations

import argparse

from dpupose.commands.argtypes import given, int_at_least, nonnegative_int, output_dir, thread_count


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate synthetic data, check a data root")
    group = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(group_parser=p)
    s = group.add_parser(
        "synth",
        help="write a synthetic data root (images/, annot/train.json, annot/valid.json)",
        description="Render articulated figures with the 16 MPII joints; deterministic from --seed. "
        "The validation images depend only on (seed, index), so the set is fixed.",
    )
    s.add_argument("--out", type=output_dir, required=True, help="the data root to write (images/, annot/)")
    s.add_argument("--num-train", type=nonnegative_int, default=20000, help="training images (default 20000)")
    s.add_argument("--num-valid", type=nonnegative_int, default=1000, help="validation images (default 1000)")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    s.add_argument(
        "--image-size",
        type=int_at_least(64, 4096),
        default=256,
        help="side of the square scenes in pixels (default 256)",
    )
    s.add_argument("--workers", type=thread_count, help="processes (default: up to 2)")
    s.set_defaults(func=synth)
    c = group.add_parser(
        "check",
        help="load every record of a data root, read every image, report problems (exit 1 if any)",
    )
    c.add_argument(
        "--data-root",
        type=given("the data set folder"),
        required=True,
        help="the data root to check (images/ and annot/*.json, or the .mat)",
    )
    c.set_defaults(func=check)


def synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dpupose.data.synthetic import SynthSpec, generate
    from dpupose.errors import UsageError
    from dpupose.progress import Progress

    if args.num_train + args.num_valid == 0:
        raise UsageError("ask for at least one image: --num-train and --num-valid are both 0")
    spec = SynthSpec(args.seed, args.num_train, args.num_valid, args.image_size)
    bar = Progress(args.num_train + args.num_valid, "rendering", "img")
    generate(Path(args.out), spec, args.workers, lambda done, _total: bar.update(done - bar.count))
    bar.close()
    print(f"wrote {args.num_train} training and {args.num_valid} validation images to {args.out}")
    return 0


def check(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from dpupose.data.mpii import describe_head_sizes, load_split
    from dpupose.data.records import missing_image_hint
    from dpupose.errors import DataError, EmptySplitError
    from dpupose.progress import Progress
    from dpupose.runtime.imagefile import read_bgr

    root = Path(args.data_root)
    if not root.is_dir():  # said once, not for each split; nothing to check: a command not carried out (2)
        load_split(root, "train")  # raises the DataError that names what the path is instead
        raise DataError(f"data root {root} is not a folder; give the folder holding images/ and annot/")
    images = os.path.normpath(root / "images")
    problems = 0
    empty = []
    for split in ("train", "valid"):
        try:
            records = load_split(root, split)
        except EmptySplitError as exc:  # fine for one split (a root to evaluate on, or to train from)
            print(f"{split}: no records ({exc}); `dpupose {'train' if split == 'train' else 'eval'}` needs them")
            empty.append(split)
            continue
        except DataError as exc:
            print(f"{split}: {exc}")
            problems += 1
            continue
        missing, outside, undecodable, off_image = [], [], [], []
        bar = Progress(len(records), f"{split}: reading images", "img")
        for r in records:
            # Lexically: images that are symlinks into a cache (git-annex, DVC) are inside images/.
            path = Path(os.path.normpath(root / "images" / r.image))
            if not str(path).startswith(images + os.sep):
                outside.append(r.image)
            elif not path.is_file():
                missing.append(r.image)
            else:
                try:
                    image = read_bgr(path)
                except (OSError, DataError):  # DataError: OpenCV refuses it (over its size limit)
                    image = None
                if image is None:
                    undecodable.append(r.image)
                elif _joint_off_image(r, image.shape[1], image.shape[0]):
                    off_image.append(r.image)
            bar.update(1)
        bar.close()
        found = [("missing", missing), ("undecodable", undecodable), ("outside images/", outside)]
        # Such records teach and measure nothing; a split of them only is what train and eval refuse.
        bare = [r.image for r in records if not r.visible.any()]
        print(
            f"{split}: {len(records)} records, head sizes: {describe_head_sizes(records)}; "
            + ", ".join(f"{len(v)} {k}" + (f" (first: {v[0]})" if v else "") for k, v in found)
            + (f", {len(bare)} without an annotated joint (first: {bare[0]})" if bare else "")
            + (missing_image_hint(root / "images", missing[0]) if missing else "")
        )
        problems += any(v for _, v in found)
        if off_image:
            # Not an error on its own (an annotator may place a joint just past the edge), but the sign of
            # annotations made on another picture: a wrong file, or the stored pixels of a JPEG that its EXIF
            # orientation turns upright when it is read.
            print(
                f"{split}: records with an annotated joint more than {OFF_IMAGE_PX:g} px outside their image: "
                f"{len(off_image)} (first: {off_image[0]}); check that the annotations are of that image as it is "
                "shown (a JPEG's EXIF orientation is applied when it is read, so its joints must be in the upright "
                "picture)"
            )
        if len(bare) == len(records):
            who = "`dpupose train` refuses" if split == "train" else "`dpupose train` and `dpupose eval` refuse"
            print(
                f"{split}: no record has an annotated joint, so {who} it: check the annotations' joints_vis and "
                "coordinates (negative ones mean unannotated)"
            )
            problems += 1
    if len(empty) == 2:
        problems += 1
    return 1 if problems else 0


OFF_IMAGE_PX = 2.0  # how far past the image's edge an annotated joint may lie before data check reports it


def _joint_off_image(record, width: int, height: int) -> bool:
    """Whether an annotated joint of `record` (0-based pixels) lies more than OFF_IMAGE_PX outside the
    image's pixel area, which spans -0.5 to width - 0.5 and -0.5 to height - 0.5."""
    pts = record.joints[record.visible]
    margin = 0.5 + OFF_IMAGE_PX
    return bool(
        (
            (pts[:, 0] < -margin)
            | (pts[:, 0] > width - 1 + margin)
            | (pts[:, 1] < -margin)
            | (pts[:, 1] > height - 1 + margin)
        ).any()
    )
