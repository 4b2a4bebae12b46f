"""`dpupose eval`: accuracy of a checkpoint on a validation split."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dpupose.commands.argtypes import device_spec, given, positive_int, quantize_folder
from dpupose.fsio import json_text, loads_json, not_a_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint (Euclidean, JSD, PCKh@0.5)",
        description="Evaluate a checkpoint on the validation split: Euclidean error (normalized and in input "
        "pixels), JS divergence to a Gaussian at the true joint, PCKh@0.5 and a per-joint table.",
    )
    p.add_argument(
        "--checkpoint", required=True, type=given("a checkpoint (.pt)"), help="the model checkpoint (.pt) to evaluate"
    )
    p.add_argument("--data", required=True, choices=["synthetic", "mpii"], help="the validation set")
    p.add_argument(
        "--data-root",
        type=given("the data set folder"),
        help="MPII root (required for mpii), or a generated synthetic root (synthetic: default a generated set "
        "cached under build/data/)",
    )
    p.add_argument("--num-samples", type=positive_int, help="evaluate the first N records only (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch (default 16)")
    p.add_argument(
        "--engine",
        choices=("fp32", "int8-emulated", "int8-ort"),
        default="fp32",
        help="fp32 (the default): torch; int8-emulated: the DPU part on the bit-accurate DPU emulator; int8-ort: "
        "the same QDQ file in ONNX Runtime",
    )
    p.add_argument(
        "--quantized",
        type=quantize_folder,
        help="a `dpupose quantize` output folder for the int8 engines (default: quantize once, cached in build/)",
    )
    p.add_argument(
        "--decode",
        choices=("dsnt", "local"),
        default="dsnt",
        help="how coordinates are read off the heatmaps: dsnt (the default: the whole map's mean, as trained) or local "
        "(the mean within 4 heatmap pixels of the maximum); see docs/training.md",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="average each heatmap with that of the mirrored image (left/right joints swapped) before "
        "decoding; twice the inference per image (not offered by `dpupose run`)",
    )
    p.add_argument(
        "--device",
        type=device_spec,
        default="auto",
        help="where the fp32 engine runs: auto (the default: the GPU when this PyTorch has CUDA and sees one, "
        "else the CPU), cpu, cuda or cuda:N; the int8 engines run on the CPU",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from dpupose.data.mpii import describe_head_sizes, head_size_counts
    from dpupose.data.sources import DEFAULT_SYNTH_VALID, load_data
    from dpupose.device import describe, resolve_device
    from dpupose.eval.evaluate import evaluate, flip_averaged, torch_predictor
    from dpupose.eval.metrics import format_table
    from dpupose.model.checkpoint import load_checkpoint

    if args.quantized and args.engine == "fp32":
        from dpupose.errors import UsageError

        raise UsageError(
            "--quantized is for the int8 engines: pass --engine int8-emulated or int8-ort with it (fp32 is the "
            "default), or leave it out"
        )
    if args.engine != "fp32" and args.device.startswith("cuda"):
        from dpupose.errors import UsageError

        raise UsageError(
            f"--device {args.device} is for --engine fp32: the int8 engines ({args.engine} here) run on the "
            "CPU; leave out --device"
        )
    device = resolve_device(args.device) if args.engine == "fp32" else None
    model, _ = load_checkpoint(args.checkpoint, "--checkpoint")  # a bad checkpoint is reported before any data is made
    if args.data == "synthetic" and args.data_root is None and (args.num_samples or 0) > DEFAULT_SYNTH_VALID:
        print(
            f"dpupose: note: --num-samples {args.num_samples}: the fixed synthetic validation set is the first "
            f"{DEFAULT_SYNTH_VALID} scenes; the {args.num_samples - DEFAULT_SYNTH_VALID} after them are further "
            "seeded scenes, so these figures are not comparable with those on that set (the model card's)",
            file=sys.stderr,
        )
    split = load_data(args.data, "valid", args.data_root, count=args.num_samples)
    records = split.records[: args.num_samples] if args.num_samples else split.records
    if args.num_samples and len(records) < args.num_samples:
        print(
            f"dpupose: note: --num-samples {args.num_samples}, but {split.root} holds {len(records)} validation "
            f"records: evaluating those {len(records)}",
            file=sys.stderr,
        )
    size = model.config.input_size
    if args.engine == "fp32":
        logging.getLogger(__name__).info("evaluating on %s", describe(device, args.device))
        predict = torch_predictor(model, device=device)
    else:
        from dpupose.quant.engines import cached_quantization, int8_predictor

        if args.quantized:
            _check_quantized_matches(Path(args.quantized), model)
        quantized = args.quantized or cached_quantization(args.checkpoint, args.data, args.data_root)
        predict = int8_predictor(quantized, args.engine)
    if args.flip:
        predict = flip_averaged(predict)
    try:
        summary = evaluate(predict, records, split.image_dir, size, args.batch_size, decode=args.decode)
    except torch.cuda.OutOfMemoryError:  # on a GPU
        from dpupose.errors import UsageError

        raise UsageError(
            f"the GPU ran out of memory at --batch-size {args.batch_size}: pass a lower --batch-size"
        ) from None
    summary.update(
        {
            "checkpoint": str(args.checkpoint),
            "data": args.data,
            "engine": args.engine,
            "decode": args.decode,
            "flip": args.flip,
            # "head_box 10, segment 2" as before, and the same counts as an object
            "head_size_source": ", ".join(f"{k} {n}" for k, n in head_size_counts(records).items()),
            "head_size_sources": head_size_counts(records),
        }
    )
    if args.json:
        print(json_text(summary))
    else:
        how = ("" if args.decode == "dsnt" else ", local decoding") + (", flip-averaged" if args.flip else "")
        print(f"{args.checkpoint} on {args.data} validation{how}; head sizes: {describe_head_sizes(records)}")
        print(format_table(summary))
    return 0


def _check_quantized_matches(folder: Path, model) -> None:
    """--quantized must come from a network like --checkpoint's (same input size, width, joints...; said
    first, as the more telling difference) and from its weights (where the folder records them)."""
    from dpupose import __version__
    from dpupose.errors import UsageError
    from dpupose.formats import newer_format, newer_format_refusal
    from dpupose.model.checkpoint import weights_digest
    from dpupose.model.pose import ModelConfig
    from dpupose.quant.pipeline import SUMMARY_FORMAT

    config = model.config.to_dict()
    path = folder / "summary.json"
    redo_damaged = "quantize --checkpoint again with `dpupose quantize`, or copy the folder whole again"
    try:
        # In the try: its stat is refused too where its read is (a link at it into a folder the user may not
        # search, which --quantized's own check, of the folder, lets by), and was the bare 'cannot use' line.
        if os.path.lexists(path) and not path.is_file():
            # A folder, FIFO or device at its name: a FIFO's read waits for a writer for ever, a device such as
            # /dev/zero is read without end; none is a record, so the checks below cannot be made. A symbolic
            # link that leads nowhere is no folder copied without it (which skips them, below): it was taken for
            # one, and the checks skipped in silence.
            raise UsageError(
                f"--quantized {folder}: its summary.json {not_a_file(path)}, so whether the folder was quantized "
                f"from --checkpoint cannot be told; {redo_damaged}"
            )
        summary = loads_json(path.read_bytes())
    except FileNotFoundError:
        return  # a folder copied without it: int8_predictor says what else it lacks
    except OSError as exc:  # no permission: the checks below cannot be made
        raise UsageError(
            f"--quantized {folder}: cannot read its summary.json ({exc.strerror or exc}); {redo_damaged}"
        ) from None
    except ValueError as exc:
        # Taken for no summary, a damaged one skipped the checks below: int8 results of another network or other
        # weights than --checkpoint's, exit status 0.
        raise UsageError(
            f"--quantized {folder}: its summary.json is damaged (not JSON: {exc}), so whether the folder was "
            f"quantized from --checkpoint cannot be told; {redo_damaged}"
        ) from None
    redo = "quantize --checkpoint with this version's `dpupose quantize`, or evaluate with the version that made it"
    # A newer format first: its fields may be of other kinds, which are no damage (and no reason to quantize again).
    if isinstance(summary, dict) and newer_format(summary.get("format"), SUMMARY_FORMAT):
        refusal = newer_format_refusal(f"--quantized {folder}: its summary.json", summary["format"], SUMMARY_FORMAT)
        raise UsageError(f"{refusal}: {redo}")
    damaged = (
        "is not a JSON object"
        if not isinstance(summary, dict)
        else "has a model_config that is not an object"
        if not isinstance(summary.get("model_config", {}), dict)
        else "has a weights_sha256 that is not a string"
        if not isinstance(summary.get("weights_sha256", ""), str)
        else None
    )
    if damaged is not None:
        raise UsageError(
            f"--quantized {folder}: its summary.json {damaged}, so whether the folder was quantized from --checkpoint "
            f"cannot be told; {redo_damaged}"
        )
    made_from = summary.get("model_config")
    if isinstance(made_from, dict):
        unknown = ModelConfig.unknown_fields(made_from)
        if unknown:
            raise UsageError(
                f"--quantized {folder}: its summary.json's model_config has field(s) {', '.join(unknown)}, which "
                f"this dpupose ({__version__}) does not know: it was quantized by a newer dpupose; {redo}"
            )
        # A field an earlier version did not record has its default.
        made_from = {**ModelConfig().to_dict(), **made_from}
    if isinstance(made_from, dict) and made_from != config:
        differ = ", ".join(
            f"{k} {made_from.get(k)} there, {v} here" for k, v in config.items() if v != made_from.get(k)
        )
        raise UsageError(
            f"--quantized {folder} was made from another network ({differ}): quantize --checkpoint with "
            "`dpupose quantize`, or leave out --quantized"
        )
    digest = summary.get("weights_sha256")
    if isinstance(digest, str) and digest != weights_digest(model):
        raise UsageError(
            f"--quantized {folder} was quantized from other weights ({summary.get('checkpoint')}, epoch "
            f"{summary.get('epoch')}): quantize this checkpoint with `dpupose quantize`, or leave out --quantized"
        )
