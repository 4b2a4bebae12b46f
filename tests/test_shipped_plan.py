"""The shipped split plan (models/dpupose-synth/split/) belongs to the shipped weights: made by the commands
that the model card and scripts/train_shipped_model.sh give, for the default Ultra96-V2 configuration, with
the DPU's weights equal to the shipped model's (batch norm folded in by hand here) to within int8 rounding,
and it runs: the emulated DPU and ONNX Runtime find the joints where the FP32 model does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from doc_keys import listed_keys, table_keys
from onnx import numpy_helper
from shipped_docs import MODEL_DIR, ROOT, by_subcommand, card_commands, options

from dpupose.data.sources import load_data
from dpupose.dpu.board import default_config_name
from dpupose.dpu.config import load_config
from dpupose.dpu.fingerprint import fingerprint_hex
from dpupose.eval.evaluate import iter_batches
from dpupose.model.checkpoint import load_checkpoint
from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.executor import SplitExecutor
from dpupose.split.plan import load_plan

PLAN_DIR = MODEL_DIR / "split"


def test_the_card_makes_the_plan_from_the_shipped_weights() -> None:
    # (that the script does the same is tests/test_shipped_model.py's check that card and script agree)
    (quantize,) = by_subcommand(card_commands(), "quantize")
    (split,) = by_subcommand(card_commands(), "split")
    assert options(split)["--out"] == "models/dpupose-synth/split"
    assert split[2] == f"{options(quantize)['--out']}/model_qdq.onnx"
    assert options(quantize)["--checkpoint"] == "models/dpupose-synth/model.pt"


def test_the_plan_is_for_the_default_configuration_and_names_only_relative_paths() -> None:
    plan = load_plan(PLAN_DIR)  # checks every file against the SHA-256 the plan records
    default = default_config_name("ultra96v2")  # what `dpupose split` and `run` take when none is named
    assert plan.dpu_config == default
    assert plan.fingerprint == fingerprint_hex(load_config(default))
    assert [sg.device for sg in plan.subgraphs] == ["dpu", "cpu"]
    assert plan.outputs.heatmaps is not None  # so --decode local works on it
    (split,) = by_subcommand(card_commands(), "split")
    source = plan.metadata["source_model"]  # relative to the plan folder
    assert not Path(source).is_absolute()
    assert (PLAN_DIR / source).resolve() == (ROOT / split[2]).resolve()
    assert all(Path(sg.file).name == sg.file for sg in plan.subgraphs)  # files inside the plan folder
    assert sum(p.stat().st_size for p in PLAN_DIR.iterdir()) < 6e6


def _fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """The conv's weights and bias with the following batch norm folded in (eval-mode statistics)."""

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    w = arr(conv.weight)
    b = arr(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
    if bn is None:
        return w, b
    g = arr(bn.weight) / np.sqrt(arr(bn.running_var) + bn.eps)
    return w * g[:, None, None, None], (b - arr(bn.running_mean)) * g + arr(bn.bias)


def test_the_plans_weights_are_the_shipped_models_rounded_to_int8() -> None:
    model, _ = load_checkpoint(MODEL_DIR / "model.pt")
    model.eval()
    inits = {}
    for f in ("dpu0.onnx", "cpu0.onnx"):
        for t in onnx.load(str(PLAN_DIR / f)).graph.initializer:
            inits[t.name] = numpy_helper.to_array(t)
    modules = dict(model.dpu_part.named_modules())
    checked = 0
    for name, conv in modules.items():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        parent, _, index = name.rpartition(".")
        nxt = modules.get(f"{parent}.{int(index) + 1}") if index.isdigit() else None
        folded = _fold(conv, nxt if isinstance(nxt, torch.nn.BatchNorm2d) else None)
        onnx_name = "logits" if name == "head" else name  # the 1x1 head writes the logits
        for kind, value in zip(("weight", "bias"), folded, strict=True):
            if kind == "bias" and f"{onnx_name}.bias_int8" not in inits:
                assert not value.any(), name  # no bias in the file: the model has none either
                continue
            q = inits[f"{onnx_name}.{kind}_int8"].astype(np.float64)
            scale = float(inits[f"{onnx_name}.{kind}_scale"])
            assert np.log2(scale) == round(np.log2(scale)), name  # power-of-two, as the DPU needs
            expected = np.clip(value / scale, -128, 127)
            # Round to nearest; the quantizer folds in float32, which near |w / scale| = 128 is off by up to
            # 128 * 2**-24 ~ 1e-5 LSB, so a value at a rounding tie may go either way.
            assert np.abs(q - expected).max() <= 0.5 + 2e-5, (name, kind)
        checked += 1
    assert checked == sum(isinstance(m, torch.nn.Conv2d) for m in model.dpu_part.modules()) == 57


def test_the_fix_points_example_in_the_docs_is_the_shipped_models() -> None:
    # docs/quantization.md shows the shipped model's fix_points.json, abridged: every position it gives is the
    # scale 2**-fp of that tensor in the shipped plan's files, and every shift follows from the positions.
    import json
    import re

    text = (ROOT / "docs" / "quantization.md").read_text()
    doc = json.loads(re.search(r"## `fix_points.json`.*?```json\n(.*?)```", text, flags=re.S).group(1))
    scales = {}
    for name in ("dpu0.onnx", "cpu0.onnx"):
        for init in onnx.load(str(PLAN_DIR / name)).graph.initializer:
            if init.name.endswith("_scale"):
                scales[init.name] = float(numpy_helper.to_array(init))

    def fp(scale_name: str) -> int:
        return int(-np.log2(scales[scale_name]))

    acts = {k: v for k, v in doc["activations"].items() if k != "..."}
    for section, suffix in (("activations", "_scale"), ("weights", ".weight_scale"), ("biases", ".bias_scale")):
        for name, value in doc[section].items():
            if name != "...":
                assert value == fp(name + suffix), (section, name)
    assert doc["input"]["fix_point"] == acts[doc["input"]["name"]] == fp("image_scale")
    assert doc["output"]["fix_point"] == acts[doc["output"]["name"]] == fp("logits_scale")
    ops = set()
    for layer in doc["layers"]:
        ops.add(layer["op"])
        ins = [fp(n + "_scale") for n in layer["inputs"]]
        assert layer["input_fix_points"] == ins and layer["output_fix_point"] == fp(layer["name"] + "_scale")
        out = layer["output_fix_point"]
        if layer["op"] == "conv":
            w, b = fp(layer["name"] + ".weight_scale"), fp(layer["name"] + ".bias_scale")
            assert (layer["weights_fix_point"], layer["bias_fix_point"]) == (w, b)
            assert (layer["shift_cut"], layer["shift_bias"]) == (ins[0] + w - out, ins[0] + w - b)
        if layer["op"] == "add":
            assert layer["shift_read"] == [i - min(ins) for i in ins]
            assert layer["shift_write"] == min(ins) - out
    assert ops == {"conv", "add", "depthtospace"}


def test_the_plan_runs_and_finds_the_joints_the_fp32_model_finds(synth_root) -> None:
    model, _ = load_checkpoint(MODEL_DIR / "model.pt")
    model.eval()
    split = load_data("synthetic", "valid", synth_root)
    images, *_ = next(iter_batches(split.records[:4], split.image_dir, model.config.input_size, 4))
    with torch.no_grad():
        fp32 = model(torch.from_numpy(images))[0].numpy()
    plan = load_plan(PLAN_DIR)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate", exact=True).create_all())
    try:
        int8 = np.concatenate([ex.infer_tensor(images[i : i + 1])["coords"] for i in range(len(images))])
    finally:
        ex.close()
    dist = np.linalg.norm(int8 - fp32, axis=-1)  # normalized units: 0.01 is 1.1 px at 224
    assert np.median(dist) <= 0.02
    assert dist.mean() > 1e-5  # INT8 on the emulated DPU, not the float model


def test_the_fast_emulator_gives_the_exact_emulators_integers_on_the_shipped_dpu_part(synth_root) -> None:
    # ONNX Runtime's QuantizeLinear rounds ties to even, the DPU up: on the file as it is, a tie in one layer
    # in 2**(bits dropped) went one LSB down, and over the ~70 layers about half of the DPU part's output
    # values moved (up to 22 LSB; a joint by 0.28 in normalized coordinates). The fast path rounds ties up.
    from dpupose.quant.compare import ort_trace
    from dpupose.runtime.base import quantize_to_int8
    from dpupose.runtime.emulator import EmulatorRunner

    plan = load_plan(PLAN_DIR)
    (dpu,) = (sg for sg in plan.subgraphs if sg.is_dpu)
    path = plan.path(dpu.file)
    exact, fast = EmulatorRunner(path), EmulatorRunner(path, exact=False)
    ((name, fp),) = ((i.name, i.fix_point) for i in exact.inputs)
    (out,) = exact.outputs
    split = load_data("synthetic", "valid", synth_root)
    images, *_ = next(iter_batches(split.records[:2], split.image_dir, plan.input_size, 2))
    x = quantize_to_int8(images.transpose(0, 2, 3, 1), fp)
    want = exact.run({name: x})[out.name]
    np.testing.assert_array_equal(fast.run({name: x})[out.name], want)
    plain = ort_trace(path, {name: x}, {name: fp})[exact.program.outputs[0].tensor]
    assert np.mean(plain != want) > 0.1  # the file as it is, in ONNX Runtime: not vacuous


def test_plan_json_holds_the_fields_runtime_md_lists():
    """runtime.md's table of plan.json fields against the shipped plan's (which has the optional ones too), in
    order, and the fields its subgraphs row names against the loader's (required and optional)."""
    plan = json.loads((PLAN_DIR / "plan.json").read_text())
    assert list(plan) == table_keys("runtime.md", "## The split plan (`plan.json`, version 1)")
    documented = listed_keys("runtime.md", "| `subgraphs` | in execution order:", " |")
    loader = ["name", "device", "file", "inputs", "outputs", "xmodel", "xmodel_subgraph", "xmodel_sha256"]
    loader += ["reason", "sha256"]
    assert set(documented) == set(loader) and all(set(sg) <= set(loader) for sg in plan["subgraphs"])
