"""The commands that make the shipped model, as its card and scripts/train_shipped_model.sh give them.

Both are read into the same form, one word list per command starting with "dpupose" (the script's
$RUNS at its default, `runs`, and its common training options spelled out), so the tests can compare them
word for word and read options from either.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "dpupose-synth"
CARD = MODEL_DIR / "README.md"
SCRIPT = ROOT / "scripts" / "train_shipped_model.sh"

# The subcommands that make the shipped files; the card's other commands (eval, run) only use them.
MAKING = ("train", "export", "quantize", "split")


def options(words: list[str]) -> dict[str, str]:
    """`--flag value` pairs of one command line (flags without a value are left out)."""
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--") and i + 1 < len(words) and not words[i + 1].startswith("--"):
            out[w] = words[i + 1]
    return out


def card_commands() -> list[list[str]]:
    """The card's `dpupose train|export|quantize|split` lines, in the order the card gives them."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", CARD.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["dpupose"] and len(words) > 1 and words[1] in MAKING:
                cmds.append(words)
    return cmds


def script_commands() -> list[list[str]]:
    """The script's stages, export, quantize and split, in the order it runs them."""
    text = SCRIPT.read_text()
    common = shlex.split(re.search(r"^common=\((.*)\)$", text, flags=re.M).group(1))
    cmds = []
    for line in text.replace("$RUNS", "runs").splitlines():
        if line.startswith("stage "):
            words = shlex.split(line)
            rest = [w for w in words[2:] if w != "${common[@]}"]
            cmds.append(["dpupose", "train", *common, "--out", words[1], *rest])
        elif line.startswith('"$DPUPOSE" '):
            cmds.append(["dpupose", *shlex.split(line)[1:]])
    return cmds


def by_subcommand(cmds: list[list[str]], sub: str) -> list[list[str]]:
    return [c for c in cmds if c[1] == sub]
