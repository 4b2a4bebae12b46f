"""`dpupose deploy`: copy the overlay, the compiled model and this package to a running board over ssh,
install them there and check the deployed fingerprint.

    dpupose deploy --host pynq --overlay build/hw/<config> --model DIR [--user xilinx] [--dry-run]
"""

from __future__ import annotations

import argparse

from dpupose.commands.argtypes import given, payload_options

HELP = "copy overlay, model and package to a board over ssh and install them"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("deploy", help=HELP, description=HELP)
    p.add_argument(
        "--host",
        type=given("the board's host name or address"),
        required=True,
        help="the board's host name or address (pynq; 192.168.3.1 over USB)",
    )
    p.add_argument(
        "--user",
        type=given("the login on the board (xilinx)"),
        default="xilinx",
        help="login on the board (default: xilinx); the files go to /home/xilinx/dpupose whoever logs in, "
        "so another login must be able to write there",
    )
    payload_options(p)
    p.add_argument(
        "--wheel",
        type=given("a dpupose wheel (.whl)"),
        help="use this dpupose wheel instead of building one from the source tree",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument(
        "--copy-with",
        choices=("auto", "rsync", "scp"),
        default="auto",
        help="how to copy (default auto: rsync when installed, else scp)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpupose.board.deploy import deploy

    use_rsync = {"auto": None, "rsync": True, "scp": False}[args.copy_with]
    deploy(
        args.host,
        args.overlay,
        args.model,
        user=args.user,
        wheel=args.wheel,
        dry_run=args.dry_run,
        use_rsync=use_rsync,
    )
    return 0
