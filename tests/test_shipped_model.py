"""The shipped model, its card and its training script tell the same story: the file the card names (size,
SHA-256, network), the last stage's validation history stored in the weights, and the commands (in the
card and in scripts/train_shipped_model.sh) that made them."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from shipped_docs import CARD, MODEL_DIR, by_subcommand, card_commands, options, script_commands

from dpupose.model.checkpoint import load_checkpoint

MODEL = MODEL_DIR / "model.pt"


@pytest.fixture(scope="module")
def shipped() -> tuple:
    return load_checkpoint(MODEL)


def card() -> str:
    return CARD.read_text()


def test_the_file_is_the_one_the_card_names(shipped) -> None:
    m = re.search(r"\| file \| `model.pt`, ([\d.]+) MB, SHA-256 `([0-9a-f]{64})` \|", card())
    assert m, "the card's file row is missing"
    data = MODEL.read_bytes()
    assert len(data) <= 20e6  # small enough for git, as the model's issue asks
    assert f"{len(data) / 1e6:.1f}" == m.group(1)
    assert hashlib.sha256(data).hexdigest() == m.group(2)
    model, state = shipped
    params = sum(p.numel() for p in model.parameters())
    assert f"{params / 1e6:.2f} M" in card()
    assert f"{model.config.input_size}×{model.config.input_size} RGB" in card()
    assert "optimizer" not in state  # an export: weights, configuration and history only


def test_the_card_and_the_script_give_the_same_commands() -> None:
    card, script = card_commands(), script_commands()
    assert [c[1] for c in card] == ["train"] * (len(card) - 3) + ["export", "quantize", "split"]
    assert card == script  # word for word, in the same order


def test_the_weights_come_from_the_last_stage_the_card_lists(shipped) -> None:
    _, state = shipped
    trains = by_subcommand(card_commands(), "train")
    (export,) = by_subcommand(card_commands(), "export")
    last = options(trains[-1])
    args = state["args"]
    assert last["--out"] == args["out"]
    assert int(last["--epochs"]) == args["epochs"] == state["epoch"] == len(state["history"])
    assert float(last["--lr"]) == args["lr"]
    assert int(last["--input-size"]) == args["input_size"]
    assert last.get("--init") == args["init"]
    assert options(export)["--checkpoint"] == f"{args['out']}/{state['exported_from']}"
    # Each stage starts from the previous stage's best weights.
    for prev, cur in itertools.pairwise(trains):
        assert options(cur)["--init"] == f"{options(prev)['--out']}/best.pt"


def test_the_cards_history_rows_are_the_weights_own(shipped) -> None:
    _, state = shipped
    rows = [r for r in card().splitlines() if re.match(r"\| \d+: \d+ px \| \d+ \|", r)]
    last_stage = max(int(r.split("|")[1].split(":")[0]) for r in rows)
    mine = [[c.strip() for c in r.strip("|").split("|")] for r in rows if r.startswith(f"| {last_stage}:")]
    expected = [
        [
            str(h["epoch"]),
            str(state["args"]["input_size"]),
            f"{h['val_loss']:.4f}",
            f"{h['euclidean']:.4f}",
            f"{h['euclidean_px']:.2f}",
            f"{h['pckh@0.5']:.3f}",
        ]
        for h in state["history"]
    ]
    assert [r[1:] for r in mine] == expected
    assert min(h["val_loss"] for h in state["history"]) == pytest.approx(state["best_val_loss"])
