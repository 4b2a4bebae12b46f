"""--device for train and eval: which device each choice resolves to, the one-line refusals, and checkpoints
that stay device-neutral. This machine's PyTorch is the CPU build: the GPU is simulated where it is asked
about (torch.cuda.is_available, device_count, a tensor that says it is on a GPU), never used."""

from __future__ import annotations

import datetime
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import tiny

import dpupose.device as device_mod
import dpupose.train as train_mod
from dpupose.cli import main
from dpupose.errors import UsageError
from dpupose.model.checkpoint import load_checkpoint, on_cpu, read_checkpoint, save_checkpoint
from dpupose.model.pose import ModelConfig, PoseNet
from dpupose.train import train

CKPT = str(Path(__file__).resolve().parents[1] / "models" / "dpupose-synth" / "model.pt")


def gpus(monkeypatch, count: int, cuda_build: bool = True) -> None:
    """As if this PyTorch were a CUDA build (or not) that sees `count` GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.version, "cuda", "12.6" if cuda_build else None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    for name in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("spec", "count", "env", "expected"),
    [
        ("auto", 0, {}, "cpu"),
        ("auto", 2, {}, "cuda:0"),
        ("cpu", 2, {}, "cpu"),
        ("cuda", 1, {}, "cuda:0"),
        ("cuda:1", 2, {}, "cuda:1"),
        # under torchrun: each process its LOCAL_RANK's GPU
        ("auto", 2, {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cuda:1"),
        ("cuda", 2, {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cuda:1"),
        ("auto", 0, {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cpu"),
        ("cpu", 2, {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cpu"),
        # a single process's LOCAL_RANK (torchrun --nproc_per_node=1) does not move it off cuda:0
        ("cuda", 2, {"WORLD_SIZE": "1", "LOCAL_RANK": "1"}, "cuda:0"),
    ],
)
def test_device_resolution(monkeypatch, spec, count, env, expected):
    gpus(monkeypatch, count)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert device_mod.resolve_device(spec) == torch.device(expected)


@pytest.mark.parametrize(
    ("spec", "count", "cuda_build", "env", "message"),
    [
        ("cuda", 0, False, {}, r"--device cuda: this PyTorch \(.*\) is a CPU-only build; install a CUDA build .*"
         r"TORCH_INDEX=https://download.pytorch.org/whl/cu126.*or pass --device cpu"),
        ("cuda:0", 0, False, {}, "--device cuda:0: this PyTorch .* is a CPU-only build; .*make setup TORCH_INDEX="),
        ("cuda", 0, True, {}, "--device cuda: this PyTorch .* has CUDA but sees no GPU: check the driver "
         r"\(nvidia-smi\) and CUDA_VISIBLE_DEVICES, or pass --device cpu"),
        ("cuda:7", 2, True, {}, "--device cuda:7: this machine has 2 visible GPU.s., cuda:0 to cuda:1"),
        ("cuda:0", 2, True, {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "under torchrun each process takes the GPU"),
        ("auto", 2, True, {"WORLD_SIZE": "4", "LOCAL_RANK": "3"}, "LOCAL_RANK=3, but this machine has 2 visible"),
    ],
)  # fmt: skip
def test_device_refusals_are_one_line(monkeypatch, spec, count, cuda_build, env, message):
    gpus(monkeypatch, count, cuda_build)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=message) as exc:
        device_mod.resolve_device(spec)
    assert "\n" not in str(exc.value)


def test_the_command_line_takes_only_device_names(capsys):
    from dpupose.commands.argtypes import device_spec

    assert [device_spec(s) for s in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "cuda:007")] == [
        "auto", "cpu", "cuda", "cuda:0", "cuda:12", "cuda:7",
    ]  # fmt: skip
    for bad in ("gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "cpu:0", "mps", "cuda:١"):
        with pytest.raises(SystemExit):
            main(["train", "--data", "synthetic", "--epochs", "1", "--out", "x", "--device", bad])
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "argument --device: expected auto, cpu, cuda or cuda:N" in err, (bad, err)


def test_distributed_backend_follows_the_device(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(train_mod.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        train_mod.dist, "init_process_group", lambda backend, timeout: calls.append(("init", backend, timeout))
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    train_mod._setup_distributed(torch.device("cpu"))
    train_mod._setup_distributed(torch.device("cuda", 1))
    half_hour = datetime.timedelta(minutes=30)  # gloo's default, which nccl (10 minutes) is given as well
    assert calls == [("init", "gloo", half_hour), ("set_device", torch.device("cuda", 1)), ("init", "nccl", half_hour)]


class OnGpu(torch.Tensor):
    """A tensor that says it is on a GPU, as a run with --device cuda holds its weights and Adam's moments;
    .cpu() gives a plain CPU copy (and is counted)."""

    copies = 0

    @property
    def device(self):  # type: ignore[override]
        return torch.device("cuda", 0)

    def cpu(self, *args, **kwargs):  # type: ignore[override]
        OnGpu.copies += 1
        return self.as_subclass(torch.Tensor).clone()


def test_a_checkpoint_of_gpu_tensors_is_saved_from_cpu_copies(tmp_path):
    model = PoseNet(ModelConfig(input_size=64, width_mult=0.25))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 64, 64))[0].sum().backward()
    optimizer.step()
    weights, adam = model.state_dict(), optimizer.state_dict()
    on_gpu = type(weights)((k, v.as_subclass(OnGpu)) for k, v in weights.items())
    on_gpu._metadata = weights._metadata  # type: ignore[attr-defined]
    adam_gpu = {**adam, "state": {i: {k: v.as_subclass(OnGpu) for k, v in s.items()} for i, s in adam["state"].items()}}
    assert all(v.device.type == "cuda" for v in on_gpu.values())
    OnGpu.copies = 0
    path = save_checkpoint(
        {"model": on_gpu, "model_config": model.config.to_dict(), "optimizer": adam_gpu, "epoch": 1}, tmp_path / "g.pt"
    )
    assert OnGpu.copies == len(weights) + sum(len(s) for s in adam["state"].values())
    # weights_only refuses a tensor subclass: a file that loads this way holds plain tensors
    state = torch.load(path, weights_only=True)
    for key, value in weights.items():
        assert type(state["model"][key]) is torch.Tensor and state["model"][key].device.type == "cpu", key
        assert torch.equal(state["model"][key], value), key
    assert state["model"]._metadata == weights._metadata  # BatchNorm's version, which load_state_dict reads
    for i, moments in adam["state"].items():
        for name, value in moments.items():
            assert type(state["optimizer"]["state"][i][name]) is torch.Tensor
            assert torch.equal(state["optimizer"]["state"][i][name], value), (i, name)
    assert state["optimizer"]["param_groups"] == adam["param_groups"]
    loaded, _ = load_checkpoint(path)
    for key, value in weights.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_state_already_on_the_cpu_is_saved_as_it_is():
    model = PoseNet(ModelConfig(input_size=64, width_mult=0.25))
    state = {"model": model.state_dict(), "history": [{"epoch": 1}], "pair": (torch.zeros(1), 2), "n": 3}
    assert on_cpu(state) is state
    assert on_cpu(state["model"]) is state["model"]


def test_a_checkpoint_written_on_a_gpu_reads_on_a_machine_without_one(tmp_path, monkeypatch):
    """A file whose storages torch recorded as on cuda:0 (what torch.save writes for GPU tensors)."""
    model = PoseNet(ModelConfig(input_size=64, width_mult=0.25))
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(
            {"format": "dpupose-checkpoint", "model": model.state_dict(), "model_config": model.config.to_dict()}, path
        )
    with zipfile.ZipFile(path) as z:
        assert b"cuda:0" in z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load says here
        torch.load(path, weights_only=True)
    loaded, _ = load_checkpoint(path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_train_device_cpu_is_the_default_here(synth_root, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="dpupose.train"):
        train(tiny(synth_root, tmp_path / "auto", epochs=1, max_steps_per_epoch=2))
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training on")]
    assert started == ["training on the CPU (--device auto: no CUDA GPU visible to this PyTorch)"]
    train(tiny(synth_root, tmp_path / "cpu", epochs=1, max_steps_per_epoch=2, device="cpu"))
    a, b = read_checkpoint(tmp_path / "auto" / "last.pt"), read_checkpoint(tmp_path / "cpu" / "last.pt")
    assert a["history"] == b["history"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert (a["args"]["device"], b["args"]["device"]) == ("auto", "cpu")
    assert json.loads((tmp_path / "cpu" / "config.json").read_text())["device"] == "cpu"


def test_train_on_a_missing_gpu_is_refused_before_anything_is_written(synth_root, tmp_path, monkeypatch):
    gpus(monkeypatch, 0, cuda_build=False)
    monkeypatch.setattr(train_mod, "load_data", lambda *a, **k: pytest.fail("read data for a refused run"))
    with pytest.raises(UsageError, match="--device cuda: this PyTorch .* is a CPU-only build"):
        train(tiny(synth_root, tmp_path / "run", device="cuda"))
    assert not (tmp_path / "run").exists()


def test_a_gpu_out_of_memory_is_one_line(synth_root, tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_mod, "pose_loss", no_memory)
    with pytest.raises(UsageError, match="the GPU ran out of memory at --batch-size 4 and --input-size 64: start"):
        train(tiny(synth_root, tmp_path / "run"))


def test_the_start_line_names_the_device(monkeypatch):
    gpus(monkeypatch, 1)
    assert device_mod.describe(torch.device("cuda", 0), "auto") == "cuda:0 (Test GPU)"
    assert device_mod.describe(torch.device("cpu"), "cpu") == "the CPU"


def test_eval_runs_the_network_on_the_device_asked_for_and_names_a_gpu_out_of_memory(synth_root, capsys, monkeypatch):
    """The fp32 engine's predictor is made on the resolved --device (cuda:1 of two GPUs here; the predictor
    itself is the CPU's, as this machine may have none); --device cuda:N with an int8 engine is refused as
    --device cuda is; a GPU that runs out of memory is one line naming --batch-size."""
    from dpupose.eval import evaluate
    from dpupose.quant import engines

    gpus(monkeypatch, 2)
    devices = []
    real = evaluate.torch_predictor

    def torch_predictor(model, threads=None, device=None):
        devices.append(device)
        return real(model)

    monkeypatch.setattr(evaluate, "torch_predictor", torch_predictor)
    monkeypatch.setattr(engines, "cached_quantization", lambda *a, **k: pytest.fail("quantized"))
    common = ["eval", "--checkpoint", CKPT, "--data", "synthetic", "--data-root", str(synth_root), "--num-samples", "2"]
    assert main([*common, "--json", "--device", "cuda:1"]) == 0
    assert devices == [torch.device("cuda", 1)]
    capsys.readouterr()
    assert main([*common, "--engine", "int8-ort", "--device", "cuda:1"]) == 2
    assert "--device cuda:1 is for --engine fp32: the int8 engines (int8-ort here)" in capsys.readouterr().err

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(evaluate, "evaluate", out_of_memory)
    assert main([*common, "--device", "cuda:1", "--batch-size", "64"]) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: the GPU ran out of memory at --batch-size 64: pass a lower --batch-size\n"
    )


def test_eval_device(synth_root, capsys, monkeypatch, caplog):
    common = ["eval", "--checkpoint", CKPT, "--data", "synthetic", "--data-root", str(synth_root), "--num-samples", "4"]
    with caplog.at_level(logging.INFO, logger="dpupose.commands.eval"):
        assert main([*common, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert "evaluating on the CPU (--device auto: no CUDA GPU visible to this PyTorch)" in caplog.messages
    assert main([*common, "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out) == default
    assert default["num_samples"] == 4 and np.isfinite(default["euclidean"])
    gpus(monkeypatch, 0, cuda_build=False)
    assert main([*common, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dpupose: error: --device cuda: this PyTorch"), err
    gpus(monkeypatch, 2)
    assert main([*common, "--device", "cuda:7"]) == 2
    assert "--device cuda:7: this machine has 2 visible GPU(s)" in capsys.readouterr().err
    assert main([*common, "--engine", "int8-ort", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda is for --engine fp32: the int8 engines (int8-ort here) run on the CPU" in err


def test_torch_predictor_returns_numpy_from_the_device():
    from dpupose.eval.evaluate import torch_predictor

    model = PoseNet(ModelConfig(input_size=64, width_mult=0.25)).eval()
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    coords, heatmaps = torch_predictor(model, device=torch.device("cpu"))(images)
    with torch.no_grad():
        want_coords, want_heatmaps = model(torch.from_numpy(images))
    assert isinstance(coords, np.ndarray) and np.array_equal(coords, want_coords.numpy())
    assert np.array_equal(heatmaps, want_heatmaps.numpy())


def test_containers_holding_a_gpu_tensor_keep_their_kind():
    """on_cpu copies a list or a tuple holding a GPU tensor as a list or a tuple (a tuple stays a tuple), its
    other items as they are."""
    t = torch.arange(3.0).as_subclass(OnGpu)
    moved = on_cpu({"pair": (t, 2), "list": [t, "x"], "n": 3})
    assert type(moved["pair"]) is tuple and type(moved["list"]) is list
    assert moved["pair"][1] == 2 and moved["list"][1] == "x" and moved["n"] == 3
    for value in (moved["pair"][0], moved["list"][0]):
        assert type(value) is torch.Tensor and torch.equal(value, torch.arange(3.0))


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_the_last_visible_gpu_is_the_highest_index_taken(monkeypatch):
    """Of two GPUs, cuda:1 and LOCAL_RANK 1 are the last taken; cuda:2 and LOCAL_RANK 2 (one past them) are
    refused with the full range and the process count to start."""
    gpus(monkeypatch, 2)
    assert device_mod.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match=r"^--device cuda:2: this machine has 2 visible GPU\(s\), cuda:0 to cuda:1; "):
        device_mod.resolve_device("cuda:2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(UsageError, match="LOCAL_RANK=2, but this machine has 2 visible GPU"):
        device_mod.resolve_device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(UsageError) as exc:
        device_mod.resolve_device("auto")
    assert str(exc.value) == (
        "--device auto: torchrun started process LOCAL_RANK=3, but this machine has 2 visible GPU(s): start at "
        "most 2 processes per node (--nproc_per_node)"
    )


@pytest.mark.parametrize(("cuda", "hip"), [("12.6", None), (None, "6.2.41133")])
def test_a_gpu_build_that_sees_no_gpu_is_told_its_own_driver(monkeypatch, cuda, hip):
    """A ROCm build of PyTorch has no torch.version.cuda but a torch.version.hip, and answers through
    torch.cuda: seeing no GPU, it is told to check the driver, not to install another build; and it is named a
    ROCm build, with ROCm's tool and variable, not told it has CUDA and to run nvidia-smi."""
    gpus(monkeypatch, 0)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", hip, raising=False)
    monkeypatch.setattr(torch, "__version__", "2.13.0+rocm6.2" if hip else "2.13.0+cu126")
    with pytest.raises(UsageError) as exc:
        device_mod.resolve_device("cuda:0")
    said = {
        "12.6": "has CUDA but sees no GPU: check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES",
        None: "has ROCm but sees no GPU: check the driver (rocm-smi) and HIP_VISIBLE_DEVICES",
    }[cuda]
    assert str(exc.value) == f"--device cuda:0: this PyTorch ({torch.__version__}) {said}, or pass --device cpu"


def test_the_start_line_names_the_gpu_in_use(monkeypatch):
    gpus(monkeypatch, 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU number {torch.device(device).index}")
    assert device_mod.describe(torch.device("cuda", 1), "cuda:1") == "cuda:1 (GPU number 1)"
