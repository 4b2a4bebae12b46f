"""`dpupose export`: a training checkpoint reduced to what inference needs (weights and provenance)."""

from __future__ import annotations

import argparse

from dpupose.commands.argtypes import given, output_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="strip a training checkpoint down to its weights (for shipping a model)",
        description="Write a copy of a `dpupose train` checkpoint without the optimizer and scheduler state "
        "(about a third of the size): model weights, model configuration, the epoch, the validation history "
        "and the training arguments. Every command that takes --checkpoint reads it; it cannot be resumed.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        type=given("a checkpoint (.pt)"),
        help="a checkpoint written by `dpupose train` (best.pt, last.pt)",
    )
    p.add_argument("--out", type=output_file, required=True, help="the file to write (e.g. models/NAME/model.pt)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)


KEEP = ("model", "model_config", "epoch", "history", "best_val_loss", "args")


def export_checkpoint(src: str, out: str, force: bool = False) -> dict:
    """Write the weights-only copy of `src` to `out`; returns what was written (without `format`)."""
    from pathlib import Path

    from dpupose.errors import UsageError
    from dpupose.fsio import same_entry
    from dpupose.model.checkpoint import model_from_state, read_checkpoint, save_checkpoint

    if Path(out).suffix.lower() == ".onnx":  # every command would take the file for an ONNX model and refuse it
        raise UsageError(
            f"--out {out} names an ONNX file, but dpupose export writes a checkpoint (torch.save, weights only): "
            "name it .pt (e.g. models/NAME/model.pt); the ONNX models come from `dpupose quantize` "
            "(DIR/model_fp32.onnx, DIR/model_qdq.onnx)"
        )
    # A folder's name (models/NAME, as quantize and split take --out): the copy was written as a file of that name,
    # without a suffix, and no command looks for a checkpoint there (a folder given in a checkpoint's place is
    # searched for its model.pt).
    if not Path(out).suffix:
        raise UsageError(
            f"--out {out} has no suffix, as a folder's name: dpupose export writes one checkpoint file, not a "
            f"folder; give {Path(out) / 'model.pt'} (a file named .pt)"
        )
    # The same file by another name: a link, `..` (resolve), or one resolve cannot see through, a bind mount of its
    # folder or the other case of its name on a case-insensitive file system (samefile of the file and of its
    # folder, the names alike but for case), which --force replaced. Not a hard link of another name: the copy is
    # renamed over that name (save_checkpoint), and the checkpoint's stays as it was.
    out_path, src_path = Path(out), Path(src)
    if out_path.resolve() == src_path.resolve() or same_entry(out_path, src_path):
        raise UsageError(
            f"--out {out} is the --checkpoint itself, which the weights-only copy would replace: give --out a new "
            "file (e.g. models/NAME/model.pt)"
        )
    # The checkpoint first: "--out exists; pass --force" for a checkpoint that is not there (or a folder)
    # had the user replace a file only to be told next that there was nothing to replace it with.
    state = read_checkpoint(src, "--checkpoint")
    model_from_state(state, src)  # refuses weights that do not fit the model before anything is written
    if Path(out).exists() and not force:
        raise UsageError(f"--out {out} exists; pass --force to replace it")
    slim = {k: state[k] for k in KEEP if k in state}
    slim["exported_from"] = Path(src).name
    save_checkpoint(slim, out)
    return slim


def run(args: argparse.Namespace) -> int:
    import os

    slim = export_checkpoint(args.checkpoint, args.out, args.force)
    size = os.path.getsize(args.out) / 1e6
    print(f"wrote {args.out} ({size:.1f} MB; epoch {slim.get('epoch', '?')}, weights only)")
    return 0
