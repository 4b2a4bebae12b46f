"""Where a command's records come from: `--data synthetic` (generated and cached under build/data/) or
`--data mpii --data-root DIR`."""

from __future__ import annotations

import errno
import shlex
from dataclasses import dataclass
from pathlib import Path

from dpupose.data.mpii import SYNTH_MARKER, describe_head_sizes, load_split
from dpupose.data.records import PoseRecord
from dpupose.errors import DataError, UsageError
from dpupose.fsio import cache_lock

DATA_KINDS = ("synthetic", "mpii")
SYNTH_CACHE = Path("build") / "data"
DEFAULT_SYNTH_TRAIN = 20000
DEFAULT_SYNTH_VALID = 1000
DEFAULT_SYNTH_SEED = 0


@dataclass
class Split:
    records: list[PoseRecord]
    image_dir: Path
    root: Path

    def head_size_note(self) -> str:
        return describe_head_sizes(self.records)


def synthetic_root(split: str, count: int, seed: int = DEFAULT_SYNTH_SEED, cache: Path | None = None) -> Path:
    """A cached synthetic data root holding `count` records of `split` (generated on first use)."""
    from dpupose.data.synthetic import SynthSpec

    spec = SynthSpec(
        seed=seed,
        num_train=count if split == "train" else 0,
        num_valid=count if split == "valid" else 0,
    )
    cache = cache or SYNTH_CACHE
    root = cache / f"synthetic-{split}-s{seed}-n{count}-v{spec.version}"
    found = _cached_synthetic(cache, split, seed, count, spec.version)
    if found is not None:
        return found
    try:
        with cache_lock(root):  # another process making it at once: wait for it, then use its root
            found = _cached_synthetic(cache, split, seed, count, spec.version)
            if found is not None:
                return found
            _generate_synthetic(root, spec, split)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # A command with no output of its own (eval) run from a read-only folder was told '<cache> is on a
        # read-only file system: write elsewhere', naming a folder the user never gave.
        raise DataError(
            f"the generated synthetic {split} set is kept in {cache}/ under the current folder, which cannot be "
            f"written ({exc.strerror}): run the command from a folder you can write, or give --data-root a set "
            "that `dpupose data synth --out DIR` wrote"
        ) from None
    return root


def _cached_synthetic(cache: Path, split: str, seed: int, count: int, version: int) -> Path | None:
    # Scene i is the same in every root of this seed and version: a larger cached root serves too.
    for existing in sorted(cache.glob(f"synthetic-{split}-s{seed}-n*-v{version}")):
        n = existing.name.split("-n")[-1].split("-v")[0]
        if n.isdigit() and int(n) >= count and (existing / "synthetic.json").is_file():
            return existing
    return None


def _generate_synthetic(root: Path, spec, split: str) -> None:
    from dpupose.data.synthetic import ensure
    from dpupose.progress import Progress

    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, f"generating synthetic {split}", "img")
        bar.update(done - bar.count)

    ensure(root, spec, progress)
    if bar is not None:
        bar.close()


def load_data(kind: str, split: str, data_root: str | Path | None, count: int | None = None, seed: int = 0) -> Split:
    """Records and image folder of one split. `count` limits synthetic generation (default 20000 / 1000)."""
    if kind not in DATA_KINDS:
        raise UsageError(f"unknown data set {kind!r}; use one of: {', '.join(DATA_KINDS)}")
    if kind == "synthetic":
        if data_root is not None:
            root = Path(data_root)
        else:
            n = count or (DEFAULT_SYNTH_TRAIN if split == "train" else DEFAULT_SYNTH_VALID)
            root = synthetic_root(split, n, seed)
    else:
        if data_root is None:
            raise UsageError("MPII data needs --data-root DIR (images/ and annot/*.json or the official .mat)")
        root = Path(data_root)
    try:
        records = load_split(root, split)
    except DataError as exc:
        if kind == "synthetic" and data_root is not None and root.is_dir() and not any(root.iterdir()):
            raise DataError(
                f"{exc} (write a synthetic data root with `dpupose data synth --out {shlex.quote(str(root))}`)"
            ) from None
        if kind == "synthetic" and data_root is not None and root.is_dir() and not (root / SYNTH_MARKER).is_file():
            # Another folder (a quantize or run folder, the wrong level of a data root): not answered with the
            # MPII layout, which --data synthetic does not read.
            # Resolved: ".", "../images" or a link have no (or another) parent in their spelling.
            parent = root.resolve().parent
            if (parent / SYNTH_MARKER).is_file():  # its images/ or annot/ given for the root
                shown = root.parent if root.parent.resolve() == parent else parent
                raise DataError(f"{root} is not a synthetic data root but a folder inside one: give {shown}") from None
            raise DataError(
                f"{root} is not a synthetic data root (no {SYNTH_MARKER}, no annot/{split}.json): give the folder "
                "`dpupose data synth --out DIR` wrote, or leave out --data-root (a generated set is cached under "
                "build/data/)"
            ) from None
        raise
    if kind == "synthetic" and data_root is not None and not (root / SYNTH_MARKER).is_file():
        # Without the marker the records were read as MPII's (1-based, the crop centre 15 * scale px lower), and
        # a synthetic root that lost it (images/ and annot/ copied alone) was scored against shifted points.
        raise DataError(
            f"{root} is given as synthetic data but has no {SYNTH_MARKER} (which `dpupose data synth` writes), so "
            "its annotations would be read in MPII's coordinates (1-based, the crop centre 15 x scale px lower): "
            f"give an MPII-layout root as mpii data (--data mpii; quantize: --calib-data mpii), or copy "
            f"{SYNTH_MARKER} back into the synthetic root"
        )
    if kind == "synthetic" and count is not None:
        records = records[:count]
    return Split(records=records, image_dir=root / "images", root=root)
