"""Split executor: boundary conversions, post-processing geometry, agreement with the unsplit model,
and the pipelined mode (order, stage timings, drop-late, errors)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tinyplan

from dpupose.errors import DataError, DeviceError, ModelFileError, UsageError
from dpupose.fsio import json_text
from dpupose.runtime.backends import RunnerFactory
from dpupose.runtime.base import Runner, TensorInfo
from dpupose.runtime.executor import (
    SplitExecutor,
    _letterbox_rgb,
    convert,
    heatmap_confidence,
    input_lut,
    preprocess,
    preprocess_int8,
    relayout,
    to_frame_pixels,
)
from dpupose.runtime.frames import Frame, FrameResult
from dpupose.runtime.pipeline import Pipeline, RunStats
from dpupose.split.plan import PLAN_FILE, BoundaryTensor, InputSpec, ModelInfo, OutputNames, Plan, Subgraph, load_plan


def nchw(name: str, shape: tuple[int, ...]) -> TensorInfo:
    return TensorInfo(name, shape, "float32", None, "NCHW")


def nhwc(name: str, shape: tuple[int, ...], fp: int) -> TensorInfo:
    return TensorInfo(name, shape, "int8", fp, "NHWC")


def test_float_to_dpu_rounds_half_up_saturates_and_goes_nhwc() -> None:
    steps = np.array([1.5, -1.5, 2.5, -2.5, 0.49, 200.0], np.float32)  # in units of 2**-5
    x = (steps / 32).reshape(1, 2, 1, 3)
    q = convert(x, nchw("t", (1, 2, 1, 3)), nhwc("t", (1, 1, 3, 2), 5))
    assert q.dtype == np.int8 and q.shape == (1, 1, 3, 2)
    expected = np.array([2, -1, 3, -2, 0, 127], np.int8).reshape(1, 2, 1, 3).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(q, expected)


def test_dpu_to_float_scales_by_fix_point_and_goes_nchw() -> None:
    q = np.arange(-4, 4, dtype=np.int8).reshape(1, 2, 2, 2)  # NHWC
    x = convert(q, nhwc("t", (1, 2, 2, 2), 3), nchw("t", (1, 2, 2, 2)))
    assert x.dtype == np.float32 and x.flags.c_contiguous  # as ONNX Runtime takes it, without a copy
    np.testing.assert_array_equal(x, q.transpose(0, 3, 1, 2) / 8.0)
    rng = np.random.default_rng(0)
    for fp in (-3, 0, 4, 7):  # every int8 value, against the float64 product
        q = rng.permutation(np.tile(np.arange(-128, 128), 12)).astype(np.int8).reshape(1, 4, 8, 96)
        x = convert(q, nhwc("t", q.shape, fp), nchw("t", (1, 96, 4, 8)))
        np.testing.assert_array_equal(x, q.transpose(0, 3, 1, 2).astype(np.float64) * 2.0**-fp)
    coords = convert(
        np.array([[[-128, 127]]], np.int8), TensorInfo("c", (1, 1, 2), "int8", 6, "NCC"), nchw("c", (1, 1, 2))
    )
    np.testing.assert_array_equal(coords, [[[-2.0, 127 / 64]]])


def test_dpu_to_dpu_passes_int8_or_requantizes() -> None:
    q = np.array([5, 6, -6, -5, 127, -128], np.int8).reshape(1, 1, 6, 1)
    src = nhwc("t", (1, 1, 6, 1), 4)
    assert convert(q, src, nhwc("t", (1, 1, 6, 1), 4)) is q  # same fix point: the very same int8 buffer
    coarser = convert(q, src, nhwc("t", (1, 1, 6, 1), 2))  # /4, half up
    np.testing.assert_array_equal(coarser.ravel(), [1, 2, -1, -1, 32, -32])
    finer = convert(q, src, nhwc("t", (1, 1, 6, 1), 6))  # *4, saturated
    np.testing.assert_array_equal(finer.ravel(), [20, 24, -24, -20, 127, -128])


def test_confidence_is_mass_near_the_mode() -> None:
    hm = np.full((3, 8, 8), 1 / 64)
    hm[0, 4, 4] += 1e-9  # flat, mode inside: 9 of 64 pixels
    hm[1] = 0
    hm[1, 4, 4] = 1.0
    hm[2] = 0.5 / 63
    hm[2, 0, 0] = 0.5  # corner mode: its window holds 3 more pixels
    conf = heatmap_confidence(hm)
    np.testing.assert_allclose(conf, [9 / 64, 1.0, 0.5 + 3 * 0.5 / 63], rtol=1e-6)
    assert heatmap_confidence(np.zeros((1, 8, 8)))[0] == 0.0


@pytest.mark.parametrize(("frame_hw", "block"), [((16, 32), 1), ((64, 128), 4), ((128, 64), 4), ((96, 33), 3)])
def test_a_mark_found_in_the_letterboxed_input_maps_back_to_where_it_was(frame_hw, block) -> None:
    # A non-square frame whose long side is `block` times S and whose short side is a multiple of `block`: a
    # block x block square of the frame, aligned to the grid, averages into exactly one input pixel
    # (INTER_AREA; block 1: the frame as it is, between the bars), whose centre is the square's centre,
    # block * k + (block - 1) / 2 in frame pixels. Found in the letterboxed image by its value alone, that pixel
    # is mapped back by to_frame_pixels and must land there: the bars, the scale and the half-pixel offsets.
    h, w = frame_hw
    size = 32
    assert max(h, w) == block * size
    for kx, ky in [(0, 0), (w // block - 1, h // block - 1), (3, 5), (w // block // 2, 1)]:
        frame = np.zeros((h, w, 3), np.uint8)
        frame[block * ky : block * (ky + 1), block * kx : block * (kx + 1)] = 200
        boxed, affine = _letterbox_rgb(frame, size)
        ys, xs = np.nonzero(boxed[..., 0])
        assert len(ys) == 1 and boxed[ys[0], xs[0], 0] == 200  # one pixel, the whole square's mean
        found = np.array([[(2 * xs[0] + 1) / size - 1, (2 * ys[0] + 1) / size - 1]])  # normalized, as DSNT gives
        expected = [block * kx + (block - 1) / 2, block * ky + (block - 1) / 2]
        np.testing.assert_allclose(to_frame_pixels(found, affine, size)[0], expected, atol=1e-4)


# Odd sizes (a 641 x 479 video), a 1 x 1 image and strips a few pixels across, which letterbox to one pixel.
@pytest.mark.parametrize("frame_hw", [(32, 64), (40, 20), (32, 32), (479, 641), (1, 1), (5000, 3), (3, 5000)])
def test_keypoints_land_in_frame_pixels(tmp_path: Path, frame_hw: tuple[int, int]) -> None:
    peaks = [(k % 8, (3 * k) % 8) for k in range(16)]
    plan = tinyplan.write_constant_plan(tmp_path, peaks)
    ex = SplitExecutor(plan, RunnerFactory(load_plan(tmp_path), "cpu").create_all())
    h, w = frame_hw
    result = ex.process(Frame(7, np.zeros((h, w, 3), np.uint8), "x.png"))
    # Independent closed form: heatmap pixel i covers input pixels 4i..4i+3 (centre 4i + 1.5); the
    # letterbox scales by s = S / max(h, w) and centres; frame pixel centres sit at integers.
    s = 32 / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))  # a side never shrinks to nothing
    left, top = (32 - nw) // 2, (32 - nh) // 2
    for j, (i, k) in enumerate(peaks):
        cx, cy = 4 * i + 1.5, 4 * k + 1.5
        expected = ((cx - left + 0.5) * w / nw - 0.5, (cy - top + 0.5) * h / nh - 0.5)
        np.testing.assert_allclose(result.keypoints[j], expected, atol=1e-3)
    np.testing.assert_allclose(result.confidence, 1.0, atol=1e-6)
    assert result.index == 7 and result.source == "x.png"
    assert set(result.timings) == {"preprocess", "all", "postprocess"}


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("split")
    tinyplan.write_split_plan(folder)
    tinyplan.write_unsplit_model(folder / "unsplit.onnx")
    return folder


def frames(n: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(i, rng.integers(0, 256, (24 + i % 3, 40, 3), dtype=np.uint8), f"f{i}") for i in range(n)]


def test_cpu_backend_matches_the_unsplit_model(split: Path) -> None:
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    session = ort.InferenceSession(str(split / "unsplit.onnx"))
    for f in frames(4):
        out = ex.infer(f.image)
        hm, coords = session.run(["heatmaps", "coords"], {"image": preprocess(f.image, 32).tensor})
        np.testing.assert_allclose(out["coords"], coords, atol=1e-6)
        np.testing.assert_allclose(out["heatmaps"], hm, atol=1e-6)


def windowed_mean(hm: np.ndarray, radius: int) -> np.ndarray:
    """Second implementation of local decoding, pixel by pixel: (J, H, W) -> (J, 2) normalized."""
    j, h, w = hm.shape
    out = np.zeros((j, 2))
    for k in range(j):
        my, mx = np.unravel_index(int(np.argmax(hm[k])), (h, w))
        total = sx = sy = 0.0
        for y in range(max(0, my - radius), min(h, my + radius + 1)):
            for x in range(max(0, mx - radius), min(w, mx + radius + 1)):
                total += hm[k, y, x]
                sx += hm[k, y, x] * ((2 * x + 1) / w - 1)
                sy += hm[k, y, x] * ((2 * y + 1) / h - 1)
        out[k] = sx / total, sy / total
    return out


def test_local_decoding_reads_keypoints_off_the_heatmaps(split: Path) -> None:
    plan = load_plan(split)
    runners = RunnerFactory(plan, "cpu").create_all()
    plain, local = SplitExecutor(plan, runners), SplitExecutor(plan, runners, "local")
    moved = 0.0
    for f in frames(3):
        out = plain.infer(f.image)
        np.testing.assert_allclose(plain.process(f).coords, out["coords"].reshape(16, 2), atol=1e-6)
        got = local.process(f).coords
        np.testing.assert_allclose(got, windowed_mean(out["heatmaps"][0].astype(np.float64), 4), atol=1e-6)
        moved = max(moved, float(np.abs(got - out["coords"].reshape(16, 2)).max()))
    assert moved > 0.01  # the tiny model's 8 x 8 maps are broad: the two decoders really differ


def test_local_decoding_needs_a_heatmaps_output(split: Path) -> None:
    plan = load_plan(split)
    runners = RunnerFactory(plan, "cpu").create_all()
    coords_only = dataclasses.replace(plan, outputs=OutputNames(plan.outputs.coords, None))
    with pytest.raises(
        UsageError, match=r"outputs coordinates only; use the dsnt decoder \(--decode dsnt; decode=\"dsnt\""
    ):
        SplitExecutor(coords_only, runners, "local")
    SplitExecutor(coords_only, runners)  # DSNT needs no heatmaps
    with pytest.raises(UsageError, match="unknown decoder 'argmax'"):
        SplitExecutor(plan, runners, "argmax")


def test_int8_dpu_path_matches_the_float_qdq_path(split: Path) -> None:
    """DPU runners on int8 NHWC (DPU -> CPU -> DPU -> CPU) agree with ONNX Runtime on the QDQ files: the
    only difference can be rounding ties at DPU inputs (half up here, ONNX Runtime's own rule there)."""
    plan = load_plan(split)
    cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    doubles: list[Runner] = []

    def make(path: Path) -> Runner:
        doubles.append(tinyplan.QdqInt8Runner(path))
        return doubles[-1]

    dpu = SplitExecutor(plan, RunnerFactory(plan, "emulate", dpu_runner=make).create_all())
    for f in frames(4):
        a, b = cpu.infer(f.image), dpu.infer(f.image)
        np.testing.assert_allclose(b["coords"], a["coords"], atol=1e-3)
        np.testing.assert_allclose(b["heatmaps"], a["heatmaps"], atol=1e-3)
    assert [d.calls for d in doubles] == [4, 4]


@pytest.mark.parametrize("fp", [-2, 0, 3, 5, 8])
def test_input_table_is_the_imagenet_normalization_quantized(fp: int) -> None:
    """Closed form in float64: floor(((v / 255 - mean) / std) * 2**fp + 0.5), saturated, per RGB channel."""
    v = np.arange(256.0)[:, None]
    real = (v / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]) * 2.0**fp
    expected = np.clip(np.floor(real + 0.5), -128, 127)
    lut = input_lut(fp)
    assert lut.shape == (1, 256, 3) and lut.dtype == np.int8
    tie = np.abs(real + 0.5 - np.round(real + 0.5)) < 1e-6  # float32 arithmetic may round a tie either way
    np.testing.assert_array_equal(lut[0][~tie], expected[~tie])
    assert np.abs(lut[0][tie].astype(int) - expected[tie]).max(initial=0) <= 1


def test_dpu_input_is_written_as_int8_with_the_float_paths_values(split: Path) -> None:
    """A plan whose image goes to a DPU subgraph gets its int8 NHWC tensor from pre-processing, equal bit
    for bit to normalizing in float and quantizing at the boundary (what it replaces)."""
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "emulate", dpu_runner=tinyplan.QdqInt8Runner).create_all())
    info = ex.runners["dpu0"].inputs[0]
    rng = np.random.default_rng(3)
    every_value = np.stack([rng.permutation(256).reshape(16, 16) for _ in range(3)], axis=2).astype(np.uint8)
    images = [
        every_value,  # upscaled 16 -> 32: every channel value, and interpolated ones
        rng.integers(0, 256, (90, 70, 3), dtype=np.uint8),  # downscaled, black bars
        rng.integers(0, 256, (20, 50), dtype=np.uint8),  # grey
        rng.integers(0, 256, (40, 40, 4), dtype=np.uint8),  # BGRA
    ]
    for i, image in enumerate(images):
        _, env = ex.start(image)
        x, stored = env["image"]
        assert x.dtype == np.int8 and x.shape == (1, 32, 32, 3) and stored.fix_point == info.fix_point
        float_path = convert(preprocess(image, 32).tensor, ex.image_info, info)
        np.testing.assert_array_equal(x, float_path)
        np.testing.assert_array_equal(preprocess_int8(image, 32, input_lut(info.fix_point)).tensor, float_path)
        result = ex.process(Frame(i, image, "x"))
        np.testing.assert_array_equal(result.coords, ex.infer_tensor(preprocess(image, 32).tensor)["coords"][0])
    cpu = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())  # ONNX Runtime takes the float image
    x, stored = cpu.start(images[1])[1]["image"]
    assert x.dtype == np.float32 and stored == cpu.image_info
    np.testing.assert_array_equal(x, preprocess(images[1], 32).tensor)


def test_plan_for_another_input_size_is_refused_by_the_executor(tmp_path: Path) -> None:
    tinyplan.write_split_plan(tmp_path)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    data["model"]["input_size"] = 64
    data["input"]["shape"] = [1, 3, 64, 64]
    data["subgraphs"][0]["inputs"][0]["shape"] = [1, 64, 64, 3]
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    plan = load_plan(tmp_path)
    with pytest.raises(ModelFileError, match=r"'image' is .* in the runner but .*wrong input size"):
        SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())


class _Wrapper(Runner):
    """A runner passing everything on to `inner`: the wrappers below change one thing each."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner

    @property
    def inputs(self) -> list[TensorInfo]:
        return self.inner.inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self.inner.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.run(feeds)


class Jittery(_Wrapper):
    """Wraps a runner; sleeps a random few milliseconds so parallel workers finish out of order."""

    def __init__(self, inner: Runner, seed: int, fail_on: int | None = None) -> None:
        self.inner, self.rng, self.fail_on, self.count = inner, random.Random(seed), fail_on, 0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.count += 1
        if self.fail_on is not None and self.count == self.fail_on:
            raise DataError("DPU job failed")
        time.sleep(self.rng.random() * 0.003)
        return self.inner.run(feeds)


def _jittery_factory(split: Path, fail_on: int | None = None):
    seeds = iter(range(100))
    return lambda path: Jittery(tinyplan.QdqInt8Runner(path), next(seeds), fail_on)


def test_pipeline_keeps_order_drops_nothing_and_times_every_stage(split: Path) -> None:
    plan = load_plan(split)
    factory = RunnerFactory(plan, "emulate", dpu_runner=_jittery_factory(split))
    ex = SplitExecutor(plan, factory.create_all())
    inputs = frames(24)
    sequential = [ex.process(f) for f in inputs]
    pipe = Pipeline(ex, factory.create, dpu_jobs=3, queue_size=2)
    stats = pipe.new_stats()
    results = []
    for r in pipe.run(iter(inputs)):
        results.append(r)
        stats.add(r)
    pipe.close()
    assert [r.index for r in results] == list(range(24))
    for a, b in zip(sequential, results, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert pipe.dropped == 0
    assert pipe.workers == {"preprocess": 1, "dpu0": 3, "cpu0": 1, "dpu1": 3, "head": 1, "postprocess": 1}
    assert all(s.frames == 24 for s in stats.stages.values())
    # From each frame's own timings, apart from the stats' running sums.
    per_frame = {n: sum(r.timings[n] for r in results) / 24 / pipe.workers[n] for n in stats.stages}
    assert stats.slowest == max(per_frame, key=per_frame.get)
    assert stats.bound_fps == pytest.approx(1 / max(per_frame.values()))


class Gate(_Wrapper):
    """Blocks until the source has produced everything: frames pile up in front of the pipeline."""

    def __init__(self, inner: Runner, gate: threading.Event) -> None:
        self.inner, self.gate = inner, gate

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.gate.wait(30)
        return self.inner.run(feeds)


def test_drop_late_drops_and_counts_frames_the_pipeline_cannot_take(split: Path) -> None:
    plan = load_plan(split)
    gate = threading.Event()
    factory = RunnerFactory(plan, "emulate", dpu_runner=lambda p: Gate(tinyplan.QdqInt8Runner(p), gate))
    ex = SplitExecutor(plan, factory.create_all())

    def camera():
        yield from frames(40)
        gate.set()

    pipe = Pipeline(ex, None, queue_size=2, drop_late=True)
    indices = [r.index for r in pipe.run(camera())]
    # At most: 2 queued per queue (7 queues) plus one in each of the 6 single-worker stages.
    assert len(indices) <= 2 * 7 + 6
    assert pipe.dropped == 40 - len(indices) > 0
    assert indices == sorted(indices) and indices[-1] == 39  # order kept; the newest frame survives


def test_pipeline_error_stops_every_thread_and_is_raised(split: Path) -> None:
    plan = load_plan(split)
    factory = RunnerFactory(plan, "emulate", dpu_runner=_jittery_factory(split, fail_on=5))
    ex = SplitExecutor(plan, factory.create_all())
    before = threading.active_count()
    got = []
    with pytest.raises(DataError, match="DPU job failed"):
        for r in Pipeline(ex, None).run(iter(frames(30))):
            got.append(r.index)
    assert got == list(range(len(got))) and len(got) < 5
    assert threading.active_count() == before


def test_source_error_arrives_after_the_frames_before_it(split: Path) -> None:
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())

    def unplugged():
        yield from frames(4)
        raise DeviceError("camera 0 stopped delivering frames")

    got = []
    with pytest.raises(DeviceError, match="camera 0"):
        for r in Pipeline(ex, None).run(unplugged()):
            got.append(r.index)
    assert got == [0, 1, 2, 3]


def _timed(timings: dict[str, float]) -> FrameResult:
    return FrameResult(0, "x", np.zeros((16, 2), np.float32), np.ones(16, np.float32), np.zeros((16, 2)), timings)


def test_run_stats_weigh_each_stage_by_its_workers_and_write_run_json_s_units() -> None:
    """By hand: dpu0 takes 30 ms a frame on 3 workers (10 ms a frame at full overlap), cpu0 15 ms on one.
    Pipelined, cpu0 is the slowest stage though its mean is the smaller, and the bound is 1 / 15 ms; run in
    sequence, 1 / (30 + 15) ms. run.json gives the means in ms, each stage's workers, wall_s to 0.1 ms."""
    stats = RunStats.for_stages(["dpu0", "cpu0"], {"dpu0": 3}, pipelined=True)
    for _ in range(4):
        stats.add(_timed({"dpu0": 0.030, "cpu0": 0.015}))
    stats.wall_seconds = 0.12345678
    doc = stats.to_dict()
    assert stats.slowest == "cpu0" and doc["slowest_stage"] == "cpu0"
    assert doc["bound_fps"] == round(1 / 0.015, 3) == 66.667
    assert doc["wall_s"] == 0.1235 and doc["fps"] == round(4 / 0.12345678, 3) == 32.4
    assert doc["stages"] == {
        "dpu0": {"workers": 3, "mean_ms": 30.0, "frames": 4},
        "cpu0": {"workers": 1, "mean_ms": 15.0, "frames": 4},
    }
    sequential = RunStats.for_stages(["dpu0", "cpu0"])
    for _ in range(4):
        sequential.add(_timed({"dpu0": 0.030, "cpu0": 0.015}))
    assert sequential.slowest == "dpu0" and sequential.to_dict()["bound_fps"] == round(1 / 0.045, 3) == 22.222


def test_run_stats_of_a_run_that_took_no_time_or_frames_are_zero_not_an_error() -> None:
    doc = RunStats.for_stages(["preprocess", "postprocess"], pipelined=True).to_dict()
    assert (doc["frames"], doc["wall_s"], doc["fps"], doc["bound_fps"], doc["slowest_stage"]) == (0, 0, 0.0, 0.0, None)


def test_a_pipeline_of_no_dpu_jobs_or_no_queue_is_refused(split: Path) -> None:
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    for jobs, size in ((0, 2), (2, 0)):
        with pytest.raises(ValueError, match="dpu_jobs and queue_size must be at least 1"):
            Pipeline(ex, None, dpu_jobs=jobs, queue_size=size)


def test_closing_the_results_early_stops_every_thread_at_once(split: Path) -> None:
    """A run stopped by its reader (--max-frames reached, q pressed, Ctrl-C) on a source that never ends:
    every stage thread and the source's thread end with it, without waiting for their join timeouts."""
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    before = threading.active_count()
    image = frames(1)[0].image

    def endless():
        for i in itertools.count():
            yield Frame(i, image, "camera:0")

    results = Pipeline(ex, None).run(endless())
    got = [next(results).index for _ in range(3)]
    start = time.monotonic()
    results.close()
    assert got == [0, 1, 2]
    assert time.monotonic() - start < 1.5  # a thread left running is waited for 2 s
    assert threading.active_count() == before


def test_confidence_of_a_map_wider_than_it_is_high() -> None:
    """A 2 x 3 map with its mode at row 1, column 0 (flat index 3): the 3 x 3 window there holds columns
    0-1 of both rows, 0.5 + 0.1 + 0.1 of the mass, not column 2's 0.3."""
    hm = np.array([[[0.1, 0.0, 0.15], [0.5, 0.1, 0.15]]])
    np.testing.assert_allclose(heatmap_confidence(hm), [0.7], rtol=1e-6)


class _Reshaped(_Wrapper):
    """A runner whose inputs are those of `inner` with one changed (a subgraph file of another split)."""

    def __init__(self, inner: Runner, inputs: list[TensorInfo]) -> None:
        self.inner, self._inputs = inner, inputs

    @property
    def inputs(self) -> list[TensorInfo]:
        return self._inputs


def test_a_subgraph_file_of_another_split_is_refused_by_its_inputs(split: Path) -> None:
    """cpu0.onnx taking an input the plan does not feed, or its one input with another channel count
    (the same H x W): both refused when the executor is made, naming the subgraph and the tensor."""
    plan = load_plan(split)
    runners = RunnerFactory(plan, "cpu").create_all()
    feat = runners["cpu0"].inputs[0]
    n, c, h, w = feat.shape
    for inputs, message in [
        ([feat, TensorInfo("mask", (1, 1, h, w), "float32", None, "NCHW")], r"takes inputs \['mask'\] the plan"),
        ([dataclasses.replace(feat, shape=(n, c + 1, h, w))], rf"'feat' is \[1, {c + 1}, {h}, {w}\] .* in the runner"),
    ]:
        changed = {**runners, "cpu0": _Reshaped(runners["cpu0"], inputs)}
        with pytest.raises(ModelFileError, match=rf"subgraph 'cpu0' \(cpu0.onnx\).*{message}"):
            SplitExecutor(plan, changed)


class _Recorder(Runner):
    """Takes the image at one fix point and records what it was fed; gives `out` zeros."""

    def __init__(self, image: TensorInfo, out: TensorInfo) -> None:
        self.image, self.out = image, out
        self.fed: list[np.ndarray] = []

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self.image]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self.out]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.fed.append(feeds[self.image.name])
        return {self.out.name: np.zeros(self.out.shape, np.float32)}


def test_an_image_two_dpu_subgraphs_take_at_two_fix_points_reaches_each_at_its_own(tmp_path: Path) -> None:
    """Each DPU runner gets the image quantized at its own fix point (5 and 6), as the float path gives it:
    one int8 tensor written at 6 and requantized to 5 would be clipped at 2.0 (127 / 64) instead of 3.97."""
    image_t = BoundaryTensor("image", (1, 32, 32, 3), "NHWC", "int8", 5)
    at5 = TensorInfo("image", (1, 32, 32, 3), "int8", 5, "NHWC")
    at6 = dataclasses.replace(at5, fix_point=6)
    feat = BoundaryTensor("feat", (1, 1, 1, 1), "NCHW", "float32", None)
    coords = BoundaryTensor("coords", (1, 16, 2), "NJC", "float32", None)
    plan = Plan(
        fingerprint=tinyplan.FINGERPRINT,
        dpu_config="u96v2-b1600-pynq",
        model=ModelInfo("two", 32, "0" * 64),
        input=InputSpec("image", (1, 3, 32, 32)),
        outputs=OutputNames("coords", None),
        subgraphs=(
            Subgraph("a", "dpu", "a.onnx", (image_t,), (feat,)),
            Subgraph("b", "dpu", "b.onnx", (dataclasses.replace(image_t, fix_point=6),), (coords,)),
        ),
        generated_by="test",
    )
    a = _Recorder(at5, TensorInfo("feat", (1, 1, 1, 1), "float32", None, "NCHW"))
    b = _Recorder(at6, TensorInfo("coords", (1, 16, 2), "float32", None, "NJC"))
    ex = SplitExecutor(plan, {"a": a, "b": b})
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ex.process(Frame(0, image, "x"))
    float_image = preprocess(image, 32).tensor
    for runner, info in ((a, at5), (b, at6)):
        np.testing.assert_array_equal(runner.fed[0], convert(float_image, ex.image_info, info))
    assert a.fed[0].max() > 64  # values over 2.0 were there to be clipped


def test_a_plan_without_heatmaps_gives_no_confidence(split: Path) -> None:
    """Confidence is read off the heatmaps: a plan that outputs coordinates only gives NaN for every joint,
    written as null in keypoints.jsonl (0 would read as a joint surely missed)."""
    plan = load_plan(split)
    coords_only = dataclasses.replace(plan, outputs=OutputNames("coords", None))
    ex = SplitExecutor(coords_only, RunnerFactory(plan, "cpu").create_all())
    result = ex.process(frames(1)[0])
    assert result.confidence.shape == (16,) and np.isnan(result.confidence).all()
    assert json.loads(json_text(result.to_json()))["confidence"] == [None] * 16


def test_infer_tensor_refuses_a_tensor_of_another_shape(split: Path) -> None:
    plan = load_plan(split)
    ex = SplitExecutor(plan, RunnerFactory(plan, "cpu").create_all())
    with pytest.raises(ValueError, match=r"input tensor is \(1, 3, 64, 64\), the plan takes \(1, 3, 32, 32\)"):
        ex.infer_tensor(np.zeros((1, 3, 64, 64), np.float32))


def test_tensors_of_other_ranks_keep_their_order_across_layouts() -> None:
    """relayout moves axes of 4-D tensors only: (1, 16, 2) coordinates described as NHWC go through as they are."""
    x = np.arange(32, dtype=np.int8).reshape(1, 16, 2)
    assert relayout(x, "NHWC", "NCHW") is x
    y = convert(x, TensorInfo("c", (1, 16, 2), "int8", 3, "NHWC"), nchw("c", (1, 16, 2)))
    np.testing.assert_array_equal(y, x / 8.0)


class _Tracked(_Wrapper):
    def __init__(self, inner: Runner) -> None:
        self.inner, self.closed = inner, False

    def close(self) -> None:
        self.closed = True


def test_runners_made_before_one_that_fails_to_load_are_closed(split: Path) -> None:
    """dpu1's file does not load: dpu0's runner, made before it (on the board a DPU runner holding the
    device), is closed before the error is raised, not left open."""
    made: list[_Tracked] = []

    def make(path: Path) -> Runner:
        if path.name == "dpu1.onnx":
            raise ModelFileError(f"{path}: cut short")
        made.append(_Tracked(tinyplan.QdqInt8Runner(path)))
        return made[-1]

    plan = load_plan(split)
    with pytest.raises(ModelFileError, match=r"subgraph 'dpu1' \(.*dpu1.onnx\) cannot be loaded: cut short; copy"):
        RunnerFactory(plan, "emulate", dpu_runner=make).create_all()
    assert [r.closed for r in made] == [True]


def test_a_plan_output_fix_point_other_than_the_subgraph_file_s_is_named(tmp_path: Path, caplog) -> None:
    tinyplan.write_split_plan(tmp_path)
    data = json.loads((tmp_path / PLAN_FILE).read_text())
    data["subgraphs"][0]["outputs"][0]["fix_point"] = 2  # dpu0.onnx's feat is at 4
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    plan = load_plan(tmp_path)
    with caplog.at_level(logging.WARNING):
        runner = RunnerFactory(plan, "emulate", dpu_runner=tinyplan.QdqInt8Runner).create(plan.subgraphs[0])
    assert runner.outputs[0].fix_point == tinyplan.FP["feat"] == 4
    assert "dpu0: tensor feat has fix_point 4 in dpu0.onnx but 2 in the plan; using the file's" in caplog.text
