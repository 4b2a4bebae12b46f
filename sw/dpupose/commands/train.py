"""`dpupose train`: train the pose model on synthetic figures or MPII."""

from __future__ import annotations

import argparse
import os

from dpupose.commands.argtypes import (
    MAX_THREADS,
    device_spec,
    float_above,
    given,
    int_at_least,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
    thread_count,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the pose model",
        description="Train MobileNetV2 + DUC + DSNT. Runs unchanged under torchrun --nproc_per_node=N (DDP: gloo on "
        "the CPU, nccl on GPUs, one per process).",
    )
    p.add_argument("--data", required=True, choices=["synthetic", "mpii"], help="data set")
    p.add_argument(
        "--data-root",
        type=given("the data set folder"),
        help="MPII root (images/, annot/*.json and/or the official .mat); "
        "for synthetic, an existing generated root to use instead of the cache under build/data/",
    )
    p.add_argument("--out", type=output_dir, required=True, help="run folder (checkpoints, history.jsonl)")
    p.add_argument(
        "--epochs", type=positive_int, required=True, help="epochs to train in all (with --resume: the new total)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--batch-size", type=positive_int, default=32, help="samples per step (default 32)")
    p.add_argument("--lr", type=float_above(0.0, 1.0), default=1e-3, help="Adam learning rate (default 0.001)")
    p.add_argument(
        "--schedule",
        choices=["step", "cosine"],
        default="step",
        help="step (the default): x0.5 every --lr-step epochs (MobilePose); cosine: down to 1%% at the last epoch",
    )
    p.add_argument("--lr-step", type=positive_int, default=80, help="epochs per x0.5 of the step schedule (default 80)")
    p.add_argument(
        "--input-size", type=int_at_least(1, 2048), default=224, help="square input, a multiple of 32 (default 224)"
    )
    p.add_argument(
        "--width",
        type=float_above(0.0, 4.0),
        default=1.0,
        dest="width_mult",
        help="MobileNetV2 width multiplier (default 1)",
    )
    p.add_argument("--num-train", type=positive_int, help="synthetic: training images (default 20000)")
    p.add_argument("--num-valid", type=positive_int, help="synthetic: validation images (default 1000, fixed set)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--workers",
        type=int_at_least(0, MAX_THREADS),
        default=1,
        help="data loader processes (default 1; 0: the main process)",
    )
    p.add_argument("--threads", type=thread_count, help="torch threads per process (default: PyTorch's, all cores)")
    p.add_argument(
        "--device",
        type=device_spec,
        default="auto",
        help="auto (the default: the GPU when this PyTorch has CUDA and sees one, else the CPU), cpu, cuda or "
        "cuda:N; under torchrun cuda is each process's cuda:LOCAL_RANK",
    )
    p.add_argument(
        "--init",
        type=given("a checkpoint (.pt)"),
        help="start from this checkpoint's weights (e.g. trained at a smaller input size)",
    )
    p.add_argument(
        "--checkpoint-minutes", type=positive_float, default=10.0, help="also save mid-epoch this often (default 10)"
    )
    p.add_argument("--max-steps-per-epoch", type=positive_int, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpupose.errors import UsageError
    from dpupose.model.pose import input_size_problem
    from dpupose.train import TrainConfig, train

    problem = input_size_problem(args.input_size)
    if problem:
        raise UsageError(f"--input-size {problem}")
    fields = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    cfg.out = str(cfg.out)  # recorded in config.json and the checkpoints
    out = train(cfg, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # once under torchrun, not once per process
        print(f"run saved in {out} (best.pt: lowest validation loss, last.pt: latest)")
    return 0
