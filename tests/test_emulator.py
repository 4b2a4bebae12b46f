"""EmulatorRunner on small QDQ graphs: layer by layer against the loop reference, end to end against the
torch float64 reference, the Runner contract, subgraph cuts, malformed files, and the ONNX Runtime path."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from quant_helpers import ref_add, ref_conv

from dpupose.errors import DataError, ModelFileError
from dpupose.quant.ir import AddOp, ConvOp, DepthToSpaceOp, FixPoints, QGraph
from dpupose.quant.qdq_export import int8_params, qdq_model
from dpupose.quant.torch_ref import TorchQdqReference
from dpupose.runtime import dpu_ops
from dpupose.runtime.base import Runner
from dpupose.runtime.emulator import EmulatorRunner, QdqOrtRunner, tie_offsets
from dpupose.runtime.onnx_lite import add_input_offsets
from dpupose.runtime.qdq_graph import Program, Step


def _conv(rng, name, src, cin, cout, k, stride=1, groups=1, act="none", bias=True):
    w = rng.normal(0, 0.3, (cout, cin // groups, k, k)).astype(np.float32)
    b = rng.normal(0, 0.2, cout).astype(np.float32) if bias else None
    p = k // 2
    return ConvOp(name, src, w, b, (stride, stride), (p, p, p, p), (1, 1), groups, act)


def small_graph() -> tuple[QGraph, FixPoints]:
    """conv s2 relu6 -> depthwise relu6 -> 1x1 -> add (shift_read 3) -> conv relu -> pixel shuffle ->
    1x1 leaky."""
    rng = np.random.default_rng(7)
    ops = [
        _conv(rng, "c1", "image", 3, 8, 3, stride=2, act="relu6"),
        _conv(rng, "dw", "c1", 8, 8, 3, groups=8, act="relu6"),
        _conv(rng, "pw", "dw", 8, 8, 1),
        AddOp("add", "c1", "pw"),
        _conv(rng, "c2", "add", 8, 16, 3, act="relu", bias=False),
        DepthToSpaceOp("d2s", "c2", 2),
        _conv(rng, "logits", "d2s", 4, 5, 1, act="leaky"),
    ]
    act = {"image": 5, "c1": 4, "dw": 4, "pw": 7, "add": 3, "c2": 4, "d2s": 4, "logits": 5}
    weights = {"c1": 7, "dw": 6, "pw": 7, "c2": 7, "logits": 6}
    biases = {"c1": 8, "dw": 9, "pw": 7, "logits": 8}
    return QGraph(ops, (3, 10, 12)), FixPoints(act, weights, biases)


@pytest.fixture(scope="module")
def qdq_file(tmp_path_factory):
    graph, fix = small_graph()
    path = tmp_path_factory.mktemp("emu") / "small_qdq.onnx"
    onnx.save(qdq_model(graph, fix), path)
    return path


def _image(n=2, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, 10, 12)).astype(np.float32)


def _feed(x, fp=5):
    return {"image": np.clip(np.floor(x.transpose(0, 2, 3, 1) * 2.0**fp + 0.5), -128, 127).astype(np.int8)}


def test_runner_contract(qdq_file):
    emu = EmulatorRunner(qdq_file)
    assert isinstance(emu, Runner)
    (i,) = emu.inputs
    (o,) = emu.outputs
    assert (i.name, i.dtype, i.layout, i.fix_point, i.shape) == ("image", "int8", "NHWC", 5, (1, 10, 12, 3))
    assert (o.name, o.dtype, o.layout, o.fix_point, o.shape) == ("logits", "int8", "NHWC", 5, (1, 10, 12, 5))
    out = emu.run(_feed(_image(3)))
    assert list(out) == ["logits"] and out["logits"].dtype == np.int8 and out["logits"].shape == (3, 10, 12, 5)
    with pytest.raises(DataError, match="int8"):
        emu.run({"image": _feed(_image())["image"].astype(np.float32)})
    with pytest.raises(DataError, match="shape"):
        emu.run({"image": np.zeros((1, 12, 10, 3), np.int8)})
    with pytest.raises(DataError, match="missing"):
        emu.run({})


def test_every_layer_matches_the_loop_reference(qdq_file):
    graph, fix = small_graph()
    env = EmulatorRunner(qdq_file).trace(_feed(_image(1)))
    a = fix.activations
    ref = {"image": env["image_int8"]}
    for op in graph.ops:
        if isinstance(op, ConvOp):
            w, b = int8_params(op, fix)
            ref[op.name] = ref_conv(
                ref[op.input], w, b, a[op.input], fix.weights[op.name], fix.biases.get(op.name), a[op.name],
                op.stride, op.pads, op.dilation, op.groups, op.act,
            )  # fmt: skip
        elif isinstance(op, AddOp):
            ref[op.name] = ref_add([ref[op.a], ref[op.b]], [a[op.a], a[op.b]], a[op.name], op.act)
        else:
            ref[op.name] = dpu_ops.depth_to_space(ref[op.input], op.block, op.mode)
        np.testing.assert_array_equal(env[f"{op.name}_int8"], ref[op.name], err_msg=op.name)


def test_emulator_equals_torch_float64_reference(qdq_file):
    x = _image(4, seed=3)
    feeds = _feed(x)
    env = EmulatorRunner(qdq_file).trace(feeds)
    ref = TorchQdqReference(qdq_file).trace({"image": x})
    assert set(ref) <= set(env)
    for name, arr in ref.items():
        np.testing.assert_array_equal(env[name], arr, err_msg=name)


def _cut_after(model: onnx.ModelProto, tensor: str, fp: int) -> onnx.ModelProto:
    """What the partitioner makes: the nodes downstream of `tensor`, fed by a fresh Q/DQ pair."""
    g = model.graph
    keep = []
    live = {tensor}
    for node in g.node:
        if any(i in live for i in node.input):
            keep.append(node)
            live.update(node.output)
    needed = {i for n in keep for i in n.input}
    init_names = {t.name for t in g.initializer}
    params = [
        n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] in needed and n.input[0] in init_names
    ]
    keep = params + keep
    needed |= {i for n in params for i in n.input}
    inits = [t for t in g.initializer if t.name in needed]
    inits += [
        numpy_helper.from_array(np.array(2.0**-fp, np.float32), "cut_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "cut_zp"),
    ]
    qdq = [
        helper.make_node("QuantizeLinear", ["cut_in", "cut_scale", "cut_zp"], ["cut_in_int8"]),
        helper.make_node("DequantizeLinear", ["cut_in_int8", "cut_scale", "cut_zp"], [tensor]),
    ]
    graph = helper.make_graph(
        qdq + keep,
        "cut",
        [helper.make_tensor_value_info("cut_in", TensorProto.FLOAT, ["batch", 8, 5, 6])],
        list(g.output),
        inits,
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import))


def test_a_cut_subgraph_runs_from_its_boundary(qdq_file):
    full = EmulatorRunner(qdq_file)
    env = full.trace(_feed(_image(2)))
    cut = EmulatorRunner(_cut_after(onnx.load(qdq_file), "add", 3))
    (i,) = cut.inputs
    assert (i.name, i.fix_point, i.shape) == ("cut_in", 3, (1, 5, 6, 8))
    out = cut.run({"cut_in": env["add_int8"]})
    np.testing.assert_array_equal(out["logits"], env["logits_int8"])


def _mutated(qdq_file, edit) -> bytes:
    m = onnx.load(qdq_file)
    edit(m)
    return m.SerializeToString()


def _set_init(m, name, value):
    for i, t in enumerate(m.graph.initializer):
        if t.name == name:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))


def test_malformed_graphs_are_rejected(qdq_file):
    cases = [
        (
            lambda m: _set_init(m, "c1_scale", np.array(0.3, np.float32)),
            "not a power of two.*a network of your own to QDQ with per-tensor power-of-two scales",
        ),
        (lambda m: _set_init(m, "c1_zp", np.array(0, np.uint8)), "zero point"),
        (lambda m: _set_init(m, "add_zp", np.array(3, np.int8)), "zero point"),
        (
            lambda m: [a.CopyFrom(helper.make_attribute("alpha", 0.1)) for a in m.graph.node[-3].attribute],
            "26/256",
        ),
        (
            lambda m: m.graph.node.append(helper.make_node("Sigmoid", ["logits"], ["extra"])),
            "outside the DPU",
        ),
    ]
    for edit, msg in cases:
        with pytest.raises(ModelFileError, match=msg):
            EmulatorRunner(_mutated(qdq_file, edit))


def _clip_bounds_as_constant_nodes(m: onnx.ModelProto, hi: float | None = None) -> None:
    """Give every Clip its bounds through Constant nodes, as torch.onnx.export writes a ReLU6."""
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = []
    for n in g.node:
        if n.op_type == "Clip":
            for k in (1, 2):
                value = inits[n.input[k]] if hi is None or k == 1 else np.array(hi, np.float32)
                name = f"{n.name}/bound{k}"
                nodes.append(helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(value)))
                n.input[k] = name
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)


def test_clip_bounds_from_constant_nodes(qdq_file):
    m = onnx.load(qdq_file)
    _clip_bounds_as_constant_nodes(m)
    assert sum(n.op_type == "Constant" for n in m.graph.node) == 4  # c1's and dw's ReLU6
    onnx.checker.check_model(m)
    feeds = _feed(_image(2, seed=5))
    np.testing.assert_array_equal(
        EmulatorRunner(m.SerializeToString()).run(feeds)["logits"], EmulatorRunner(qdq_file).run(feeds)["logits"]
    )
    x = _image(2, seed=5)
    ref = TorchQdqReference(m).trace({"image": x})
    np.testing.assert_array_equal(ref["logits_int8"], EmulatorRunner(qdq_file).run(_feed(x))["logits"])
    m = onnx.load(qdq_file)
    _clip_bounds_as_constant_nodes(m, hi=4.0)
    with pytest.raises(ModelFileError, match=r"Clip\(0.0, 4.0\) is neither ReLU nor ReLU6"):
        EmulatorRunner(m.SerializeToString())


def test_torch_reference_reads_clip_bounds_given_as_attributes(qdq_file):
    """Before opset 11 a Clip carries min and max as attributes."""
    m = onnx.load(qdq_file)
    clips = [n for n in m.graph.node if n.op_type == "Clip"]
    assert len(clips) == 2
    for n in clips:
        del n.input[1:]
        n.attribute.extend([helper.make_attribute("min", 0.0), helper.make_attribute("max", 6.0)])
    x = _image(2, seed=5) * 3  # large enough for c1 to reach its ReLU6 bound
    ref = TorchQdqReference(m).trace({"image": x})
    want = TorchQdqReference(qdq_file).trace({"image": x})
    assert np.any(want["c1_int8"] == 96) and np.all(want["c1_int8"] <= 96)  # ReLU6 at fp 4 clips at 96
    for name, arr in want.items():
        np.testing.assert_array_equal(ref[name], arr, err_msg=name)


def test_a_clip_without_an_upper_bound_is_a_relu_in_the_torch_reference(qdq_file):
    """Clip(x, 0) with no max (an input or an attribute left out) is a ReLU, as the emulator reads it: no cap at 6."""
    m = onnx.load(qdq_file)
    for n in (n for n in m.graph.node if n.op_type == "Clip"):
        del n.input[2:]
    x = _image(2, seed=5) * 3
    env = EmulatorRunner(m.SerializeToString()).trace(_feed(x))
    ref = TorchQdqReference(m).trace({"image": x})
    assert np.any(ref["c1_int8"] > 96)  # above ReLU6's cap at fp 4
    for name, arr in ref.items():
        np.testing.assert_array_equal(env[name], arr, err_msg=name)


def _lsb(a, b) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def test_ort_fast_path_same_interface_and_the_dpus_rounding(qdq_file, tmp_path):
    from dpupose.quant.compare import ort_trace

    feeds = _feed(_image(4, seed=5))
    exact = EmulatorRunner(qdq_file)
    fast = EmulatorRunner(qdq_file, exact=False)
    ort = QdqOrtRunner(qdq_file)
    assert fast.inputs == exact.inputs == ort.inputs and fast.outputs == exact.outputs == ort.outputs
    b = fast.run(feeds)["logits"]
    np.testing.assert_array_equal(b, ort.run(feeds)["logits"])
    env = exact.trace(feeds)
    plain = ort_trace(qdq_file, feeds, {"image": 5})  # the file as it is: ONNX Runtime rounds ties to even
    as_is = QdqOrtRunner(qdq_file, round_ties_up=False).run(feeds)["logits"]
    np.testing.assert_array_equal(as_is, plain["logits_int8"])
    # Every layer as the fast path computes it (the graph it gives ONNX Runtime, all Q outputs exposed).
    patched = tmp_path / "fast.onnx"
    patched.write_bytes(add_input_offsets(qdq_file.read_bytes(), tie_offsets(exact.program)))
    layers = ort_trace(patched, feeds, {"image": 5})
    np.testing.assert_array_equal(layers["logits_int8"], b)
    # Plain ONNX Runtime: ties in the first layer go down by one LSB, and more differs downstream; the fast
    # path rounds ties up: every layer the DPU's integers (conv, depthwise, add, conv without bias, pixel
    # shuffle, and a leaky conv rounded at 2**-12 of a step).
    d1 = _lsb(env["c1_int8"], plain["c1_int8"])
    assert d1.max() == 1 and 0 < d1.mean() < 0.05
    assert _lsb(env["logits_int8"], plain["logits_int8"]).max() > 1
    assert set(layers) == set(plain) and set(layers) <= set(env)
    for name, arr in layers.items():
        np.testing.assert_array_equal(arr, env[name], err_msg=name)


def test_ort_fast_path_misses_an_add_truncation_below_the_output_step(tmp_path):
    # The add aligns pw (fix point 7) to c1's 4 with two guard bits, truncating its lowest bit; with the
    # output at 6 that bit is within the output's step, and ONNX Runtime, which adds exactly, differs.
    graph, fix = small_graph()
    fix.activations["add"] = 6
    path = tmp_path / "fine_add.onnx"
    onnx.save(qdq_model(graph, fix), path)
    from dpupose.quant.compare import ort_trace

    feeds = _feed(_image(4, seed=5))
    env = EmulatorRunner(path).trace(feeds)
    program = EmulatorRunner(path).program
    patched = tmp_path / "fast.onnx"
    patched.write_bytes(add_input_offsets(path.read_bytes(), tie_offsets(program)))
    layers = ort_trace(patched, feeds, {"image": 5})
    for name in ("c1_int8", "dw_int8", "pw_int8"):
        np.testing.assert_array_equal(layers[name], env[name], err_msg=name)
    assert _lsb(layers["add_int8"], env["add_int8"]).max() == 1


def test_ort_fast_path_rounds_an_add_with_leaky_relu_as_the_dpu(tmp_path):
    # LeakyReLU multiplies by 13/2**7 after an add as after a conv: the value ONNX Runtime quantizes lies on
    # a grid 7 bits finer than the add's inputs, and half a step of the inputs' grid would move values that
    # are no ties (up to 7 LSB downstream).
    graph, fix = small_graph()
    graph.ops[3] = AddOp("add", "c1", "pw", "leaky")
    fix.activations["pw"] = 5  # one position from c1's 4: the add aligns exactly, as ONNX Runtime adds
    path = tmp_path / "leaky_add.onnx"
    onnx.save(qdq_model(graph, fix), path)
    exact = EmulatorRunner(path)
    assert tie_offsets(exact.program)["add_int8"] == 2.0 ** -(5 + 7 + 1)
    from dpupose.quant.compare import ort_trace

    feeds = _feed(_image(16, seed=3))
    env = exact.trace(feeds)
    assert (env["add_int8"] < 0).mean() > 0.02  # the leaky slope is used
    patched = tmp_path / "fast.onnx"
    patched.write_bytes(add_input_offsets(path.read_bytes(), tie_offsets(exact.program)))
    for name, arr in ort_trace(patched, feeds, {"image": 5}).items():
        np.testing.assert_array_equal(arr, env[name], err_msg=name)
    np.testing.assert_array_equal(EmulatorRunner(path, exact=False).run(feeds)["logits"], env["logits_int8"])


def test_ort_fast_path_rounds_ties_of_a_layer_that_drops_16_bits(tmp_path):
    # The logits' leaky conv: d2s (4) + weights (10) - output (5) = 9 bits dropped, 16 for its negative
    # values (slope 13/2**7). Only |value| < 2**7 output steps matter (beyond, the output saturates
    # whatever the rounding): a value there plus 2**-17 steps takes 7 + 16 + 1 = 24 bits, float32's
    # significand, so the offset is exact and the positive values' ties (one in 2**9) round up too.
    graph, fix = small_graph()
    fix.weights["logits"] = 10
    fix.biases["logits"] = 12
    path = tmp_path / "fine_logits.onnx"
    onnx.save(qdq_model(graph, fix), path)
    exact = EmulatorRunner(path)
    (step,) = (s for s in exact.program.steps if s.out == "logits_int8")
    assert (step.fps_in[0] + step.fp_w + 7 - step.fp_out, step.act) == (16, "leaky")
    assert tie_offsets(exact.program)["logits_int8"] == 2.0 ** -(4 + 10 + 7 + 1)
    feeds = _feed(_image(64, seed=11))
    want = exact.run(feeds)["logits"]
    np.testing.assert_array_equal(EmulatorRunner(path, exact=False).run(feeds)["logits"], want)
    # Not vacuous: without that one offset, ties of the layer go to even.
    from dpupose.quant.compare import ort_trace

    offsets = tie_offsets(exact.program)
    del offsets["logits_int8"]
    patched = tmp_path / "fast.onnx"
    patched.write_bytes(add_input_offsets(path.read_bytes(), offsets))
    assert _lsb(ort_trace(patched, feeds, {"image": 5})["logits_int8"], want).max() == 1


def _numpys_openblas():
    """(get, set) of the thread count of the OpenBLAS numpy's wheel carries (numpy.libs), found here by its
    file name, apart from dpupose.runtime.blas's search of the process's mappings; None for another BLAS."""
    import ctypes
    import glob
    import os

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*.so*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, set_
    return None


@pytest.fixture
def openblas_at_3(monkeypatch):
    """numpy's OpenBLAS thread count getter, the count set to 3 and none of the variables OpenBLAS reads it from
    set; the count it had is given back after. Skipped where numpy carries another BLAS."""
    found = _numpys_openblas()
    if found is None:
        pytest.skip("numpy here does not carry OpenBLAS")
    get, set_ = found
    before = get()
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    set_(3)
    try:
        yield get
    finally:
        set_(before)


def test_the_emulator_runs_numpys_blas_on_one_thread_unless_the_environment_says(qdq_file, openblas_at_3, monkeypatch):
    """OpenBLAS's thread per core made the shipped plan's dpu0 several times slower on a busy 2-core PC
    (docs/runtime.md). While the emulator runs it is held to one thread, and given back its count after; a
    count the user set in the environment stays, and the integers are the same either way."""
    get = openblas_at_3
    emu = EmulatorRunner(qdq_file)
    assert get() == 3
    seen = []
    first = emu._steps[0]
    emu._steps[0] = lambda env: (seen.append(get()), first(env))[1]
    limited = emu.run(_feed(_image(2)))["logits"]
    assert seen == [1, 1] and get() == 3  # each image's first layer: one thread; then the count it had
    seen.clear()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    np.testing.assert_array_equal(emu.run(_feed(_image(2)))["logits"], limited)
    assert seen == [3, 3] and get() == 3


@pytest.mark.parametrize("name", ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_blas_thread_count_from_any_of_openblas_s_variables_stays(name, openblas_at_3, monkeypatch):
    # OpenBLAS reads all three; a count the user set in any of them is kept while the emulator runs
    from dpupose.runtime.blas import one_blas_thread

    get = openblas_at_3
    monkeypatch.setenv(name, "3")
    with one_blas_thread():
        assert get() == 3
    monkeypatch.delenv(name)
    with one_blas_thread():
        assert get() == 1
    assert get() == 3


def test_overlapping_blas_limits_give_the_count_back_when_the_last_one_ends(openblas_at_3):
    # a pipelined run's emulators hold the limit from several threads, their blocks overlapping: the count is
    # 1 until the last of them ends, then the one it had before the first began (not the 1 a later block saw)
    from dpupose.runtime.blas import one_blas_thread

    get = openblas_at_3
    first, second = one_blas_thread(), one_blas_thread()
    first.__enter__()
    assert get() == 1
    second.__enter__()
    assert get() == 1
    first.__exit__(None, None, None)
    assert get() == 1  # the second still runs
    second.__exit__(None, None, None)
    assert get() == 3


def test_an_empty_blas_thread_variable_is_no_count_the_user_set(openblas_at_3, monkeypatch):
    # OpenBLAS reads an empty OPENBLAS_NUM_THREADS as 0, its own default (a thread per core): nothing the user
    # chose, so the emulator's limit applies
    from dpupose.runtime.blas import ENVIRONMENT, one_blas_thread

    get = openblas_at_3
    for name in ENVIRONMENT:
        monkeypatch.setenv(name, "")
    with one_blas_thread():
        assert get() == 1
    assert get() == 3


def test_the_openblas_libraries_are_read_off_the_process_s_mappings(monkeypatch):
    """Each OpenBLAS file once (a library is mapped several times, by permissions), whatever its case; a
    system libblas in an OpenBLAS folder (Debian's openblas-pthread) is one; other files and anonymous
    mappings are not; a path with spaces is whole."""
    import io

    from dpupose.runtime import blas

    numpys = "/usr/lib/python3/numpy.libs/libscipy_openblas64_-ff651d7f.so"
    maps = f"""\
55d4c3a00000-55d4c3a01000 r--p 00000000 08:01 1311 /usr/bin/python3.12
7f1c2a000000-7f1c2a100000 r--p 00000000 08:01 2201 {numpys}
7f1c2a100000-7f1c2a900000 r-xp 00100000 08:01 2201 {numpys}
7f1c2a900000-7f1c2a920000 rw-p 00900000 08:01 2201 {numpys}
7f1c2b000000-7f1c2b100000 r-xp 00000000 08:01 2202 /opt/My Libs/libOpenBLAS.so.0
7f1c2c000000-7f1c2c100000 r-xp 00000000 08:01 2203 /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
7f1c2d000000-7f1c2d001000 r--p 00000000 08:01 2204 /home/user/openblas-notes.txt
7f1c2e000000-7f1c2e021000 rw-p 00000000 00:00 0
7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0                          [stack]
"""
    real_open = open

    def fake_open(path, *args, **kwargs):
        return io.StringIO(maps) if path == "/proc/self/maps" else real_open(path, *args, **kwargs)

    monkeypatch.setattr(blas, "open", fake_open, raising=False)
    assert blas._loaded_openblas() == [
        numpys,
        "/opt/My Libs/libOpenBLAS.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    ]


def _step(kind, fps_in, fp_out, act="none", fp_w=None, fp_b=None, **attrs) -> Step:
    """One step of a program, for the grid its output value lies on (its inputs are not read)."""
    return Step(kind, f"{kind}{len(attrs)}_{fp_out}_{act}_int8", fp_out, ["x"] * len(fps_in), fps_in, kind, act,
                fp_w=fp_w, fp_b=fp_b, attrs=attrs)  # fmt: skip


@pytest.mark.parametrize(
    ("step", "offset"),
    [
        # the grid of a conv's sum: fp_in + fp_w, or the bias' where it is finer (13 > 5 + 7)
        (dict(kind="conv", fps_in=[5], fp_out=4, fp_w=7, fp_b=13), 2.0**-14),
        (dict(kind="conv", fps_in=[5], fp_out=4, fp_w=7, fp_b=9), 2.0**-13),
        (dict(kind="conv", fps_in=[4], fp_out=8, fp_w=6, fp_b=None, act="leaky"), 2.0**-18),  # 26/256 = 13/2**7
        (dict(kind="emul", fps_in=[5, 6], fp_out=7), 2.0**-12),  # a product: 2**-(5 + 6)
        (dict(kind="add", fps_in=[4, 6], fp_out=5), 2.0**-7),
        (dict(kind="add", fps_in=[4, 4], fp_out=4), None),  # on the output's grid: no ties
        # 16 fractional bits: 2**7 steps and the offset fill float32's 24 bits; 17 would not fit
        (dict(kind="conv", fps_in=[10], fp_out=-6, fp_w=0, fp_b=None), 2.0**-11),
        (dict(kind="conv", fps_in=[10], fp_out=-7, fp_w=0, fp_b=None), None),
        (dict(kind="resize_linear", fps_in=[3], fp_out=3, half_pixel=False, scale=2), 2.0**-8),  # 1/16 steps
        (dict(kind="resize_linear", fps_in=[3], fp_out=3, half_pixel=False, sizes=[1, 1, 8, 8]), 2.0**-12),  # x8
        (dict(kind="resize_linear", fps_in=[3], fp_out=3, half_pixel=True, sizes=[1, 1, 8, 8]), 2.0**-10),  # x4
        (dict(kind="hswish", fps_in=[5], fp_out=3), None),  # 1/6 taken as a float: on no grid
        (dict(kind="avgpool", fps_in=[5], fp_out=3, kernel=(3, 3)), None),
        (dict(kind="hsigmoid", fps_in=[5], fp_out=7), None),
    ],
)
def test_tie_offsets_are_half_a_step_of_the_values_grid(step, offset):
    s = _step(**step)
    got = tie_offsets(Program([], [], [s], {}))
    assert got == ({} if offset is None else {s.out: offset})


def test_a_batch_dimension_of_0_is_read_as_1(qdq_file):
    m = onnx.load(qdq_file)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0  # some writers' unknown size
    emu = EmulatorRunner(m.SerializeToString())
    assert emu.inputs[0].shape == (1, 10, 12, 3)


def test_a_feed_of_another_shape_is_named_with_the_shape_the_subgraph_takes() -> None:
    """The message read 'expected (N, (2, 3, 4)) NHWC', a tuple inside the shape; it is the shape as written."""
    from dpupose.runtime.base import TensorInfo
    from dpupose.runtime.emulator import check_feeds

    info = TensorInfo("x", (1, 2, 3, 4), "int8", 3, "NHWC")
    check_feeds([info], {"x": np.zeros((5, 2, 3, 4), np.int8)})  # any batch
    with pytest.raises(DataError, match=r"^input 'x' has shape \(1, 3, 2, 4\), expected \(N, 2, 3, 4\) NHWC$"):
        check_feeds([info], {"x": np.zeros((1, 3, 2, 4), np.int8)})


@pytest.mark.parametrize(("axes", "shown"), [({2: "h", 3: "w"}, "h, w"), ({1: "c"}, "c"), ({2: 0}, "0")])
@pytest.mark.parametrize("runner", [EmulatorRunner, QdqOrtRunner])
def test_a_symbolic_size_past_the_batch_is_refused_naming_the_input_and_axis(qdq_file, tmp_path, axes, shown, runner):
    """The same subgraph with its height and width, or its channels, symbolic (torch.onnx.export's dynamic_axes)
    read them as 1: the runner took (N, 1, 1, 3) and refused every image of the size the fixed file runs at as
    the wrong shape ('expected (N, 1, 1, 3) NHWC'; eval --quantized said only that). Refused when loaded, naming
    the input, its symbolic axes and the export to make."""
    fixed = runner(qdq_file).run(_feed(_image(2)))["logits"]  # the fixed-size file runs these images
    assert fixed.shape == (2, 10, 12, 5)

    def symbolic(m):
        dims = m.graph.input[0].type.tensor_type.shape.dim
        dims[0].dim_param = "N"
        for axis, name in axes.items():
            if name == 0:  # a size of 0, some writers' unknown one
                dims[axis].dim_value = 0
            else:
                dims[axis].dim_param = name

    path = tmp_path / "dynamic.onnx"
    path.write_bytes(_mutated(qdq_file, symbolic))
    declared = ["N", 3, 10, 12]
    for axis, name in axes.items():
        declared[axis] = name
    with pytest.raises(ModelFileError) as info:
        runner(path).run(_feed(_image(2)))
    assert str(info.value) == (
        f"{path}: input 'image' {tuple(declared)} has a size that is not fixed ({shown}): the DPU, and "
        f"{'the emulator' if runner is EmulatorRunner else 'the emulator' + chr(39) + 's ONNX Runtime path'}, run "
        "fixed sizes only (the batch alone may be symbolic); export the model with the size the DPU will run "
        "(torch.onnx.export's dynamic_axes for the batch alone: {'image': {0: 'batch'}})"
    )
    with pytest.raises(ModelFileError, match="not fixed"):  # a model given as bytes is named as what it is
        runner(path.read_bytes())


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_ort_fast_path_of_a_file_at_a_fixed_batch_of_two_takes_any_count(qdq_file, tmp_path, count):
    """A file exported at a fixed batch of 2 was run by ONNX Runtime with whatever count it was given, so eval
    --engine int8-ort of an odd number of samples stopped with ONNX Runtime's 'Got invalid dimensions for input:
    image ... Got: 3 Expected: 2' and a traceback. It runs in twos, the last padded, and gives what the same file
    with a symbolic batch gives."""

    def batch(size):
        def edit(m):
            for vi in [m.graph.input[0], *m.graph.output]:
                d = vi.type.tensor_type.shape.dim[0]
                if size is None:
                    d.dim_param = "N"
                else:
                    d.dim_value = size

        path = tmp_path / f"b{size}.onnx"
        path.write_bytes(_mutated(qdq_file, edit))
        return path

    feeds = _feed(_image(count, seed=count))
    expected = QdqOrtRunner(batch(None)).run(feeds)["logits"]
    got = QdqOrtRunner(batch(2)).run(feeds)["logits"]
    assert got.shape == (count, 10, 12, 5)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(EmulatorRunner(batch(2), exact=False).run(feeds)["logits"], expected)
