"""The pose network against the published MobilePose figures and closed-form DSNT expectations."""

import math

import pytest
import torch

from dpupose.model import build_model
from dpupose.model.complexity import count_macs, count_params
from dpupose.model.dsnt import dsnt, flat_softmax, pixel_centres
from dpupose.model.losses import euclidean_losses, gaussian_heatmaps, js_divergence, pose_loss
from dpupose.model.pose import ModelConfig


def test_param_and_mac_counts_match_published_figures():
    model = build_model()
    params = count_params(model)
    macs = count_macs(model, (3, 224, 224))
    # MobileNetV2 features 2.22 M + decoder 1.88 M; ~0.30 GMAC backbone + ~0.19 GMAC decoder.
    assert 4.0e6 < params < 4.2e6
    assert 0.47e9 < macs < 0.51e9


@pytest.mark.parametrize("size", [224, 160, 256])
def test_output_shapes_follow_input_size(size):
    model = build_model(ModelConfig(input_size=size)).eval()
    with torch.no_grad():
        logits = model.dpu_part(torch.zeros(2, 3, size, size))
        coords, heatmaps = model.cpu_part(logits)
    assert logits.shape == (2, 16, size // 4, size // 4)
    assert coords.shape == (2, 16, 2)
    assert heatmaps.shape == logits.shape


def test_input_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(input_size=200)


def test_pixel_centres_closed_form():
    assert torch.allclose(pixel_centres(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_dsnt_of_one_hot_map_is_that_pixels_centre():
    hm = torch.zeros(1, 1, 8, 6)
    hm[0, 0, 5, 2] = 1.0  # row 5 of 8, column 2 of 6
    xy = dsnt(hm)[0, 0]
    assert xy[0].item() == pytest.approx((2 * 2 + 1) / 6 - 1)
    assert xy[1].item() == pytest.approx((2 * 5 + 1) / 8 - 1)


def test_dsnt_of_symmetric_map_is_the_centre():
    g = torch.exp(-((torch.arange(9.0) - 4) ** 2) / 3)
    hm = (g[:, None] * g[None, :])[None, None]
    hm = hm / hm.sum()
    assert torch.allclose(dsnt(hm), torch.zeros(1, 1, 2), atol=1e-6)
    uniform = torch.full((1, 1, 7, 7), 1 / 49)
    assert torch.allclose(dsnt(uniform), torch.zeros(1, 1, 2), atol=1e-6)


def test_flat_softmax_sums_to_one_over_the_whole_map():
    hm = flat_softmax(torch.randn(3, 16, 5, 7))
    assert torch.allclose(hm.sum(dim=(2, 3)), torch.ones(3, 16), atol=1e-6)


def test_js_divergence_properties():
    p = flat_softmax(torch.randn(4, 3, 6, 6))
    q = flat_softmax(torch.randn(4, 3, 6, 6))
    assert torch.allclose(js_divergence(p, p), torch.zeros(4, 3), atol=1e-6)
    assert torch.allclose(js_divergence(p, q), js_divergence(q, p), atol=1e-6)
    assert (js_divergence(p, q) > 0).all()
    # Disjoint supports reach the upper bound ln 2.
    a = torch.zeros(1, 1, 2, 2)
    b = torch.zeros(1, 1, 2, 2)
    a[..., 0, 0] = 1
    b[..., 1, 1] = 1
    assert js_divergence(a, b).item() == pytest.approx(math.log(2), abs=1e-5)


def test_gaussian_target_has_its_mean_at_the_target():
    target = torch.tensor([[[0.1, -0.3]]])
    g = gaussian_heatmaps(target, 56, 56, sigma=1.0)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(dsnt(g), target, atol=1e-3)


def test_gaussian_target_has_a_one_pixel_sigma():
    # Centred on a pixel of a 33 x 33 map: the variance along each axis, in heatmap pixels, is sigma**2
    # (the sampled Gaussian's tails beyond 16 pixels are negligible).
    g = gaussian_heatmaps(torch.zeros(1, 1, 2, dtype=torch.float64), 33, 33, sigma=1.0)[0, 0]
    px = torch.arange(33, dtype=torch.float64) - 16
    assert (g.sum(dim=0) * px**2).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (g.sum(dim=1) * px**2).sum().item() == pytest.approx(1.0, abs=1e-6)
    g2 = gaussian_heatmaps(torch.zeros(1, 1, 2, dtype=torch.float64), 33, 33, sigma=2.0)[0, 0]
    assert (g2.sum(dim=0) * px**2).sum().item() == pytest.approx(4.0, abs=1e-6)


def test_euclidean_loss_is_the_distance_not_its_square():
    pred = torch.tensor([[[0.3, 0.4], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [-0.6, 0.8]]])
    assert euclidean_losses(pred, target)[0].tolist() == pytest.approx([0.5, 1.0])
    hm = gaussian_heatmaps(target, 16, 16)
    visible = torch.tensor([[1, 1]])
    assert pose_loss(pred, hm, target, visible, js_weight=0).item() == pytest.approx(0.75)


def test_pose_loss_ignores_invisible_joints():
    coords = torch.zeros(1, 2, 2)
    target = torch.tensor([[[0.0, 0.0], [0.6, 0.8]]])
    hm = gaussian_heatmaps(target, 16, 16)
    visible = torch.tensor([[1, 0]])
    assert pose_loss(coords, hm, target, visible).item() == pytest.approx(0.0, abs=1e-4)
    visible = torch.tensor([[0, 1]])
    assert pose_loss(coords, hm, target, visible, js_weight=0).item() == pytest.approx(1.0, abs=1e-5)


def test_every_checkpoint_refusal_names_both_commands_that_write_one(tmp_path):
    """Some refusals said 'use a checkpoint written by `dpupose train`', others '... by `dpupose train` or
    `dpupose export`', for the same kind of file: export writes checkpoints too. Each says both."""
    from dpupose.errors import CheckpointError
    from dpupose.model.checkpoint import FORMAT, model_from_state, read_checkpoint

    both = "written by `dpupose train` or `dpupose export`"
    cfg = ModelConfig(input_size=64, width_mult=0.35, decoder_channels=32)
    weights = build_model(cfg).state_dict()
    name = next(k for k, v in weights.items() if v.is_floating_point())
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "random.pt").write_bytes(b"\x00\x01 not a zip")
    torch.save({"format": "another program's"}, tmp_path / "other.pt")
    refusals = [
        lambda: read_checkpoint(tmp_path / "model.onnx"),
        lambda: read_checkpoint(tmp_path / "random.pt"),
        lambda: read_checkpoint(tmp_path / "other.pt"),
        lambda: model_from_state({"format": FORMAT, "model": weights, "model_config": {"num_joints": 0}}),
        lambda: model_from_state({"format": FORMAT, "model": {"x": torch.zeros(1)}, "model_config": cfg.to_dict()}),
        lambda: model_from_state(
            {"format": FORMAT, "model": {**weights, name: weights[name].int()}, "model_config": cfg.to_dict()}
        ),
    ]
    for refuse in refusals:
        with pytest.raises(CheckpointError) as caught:
            refuse()
        assert both in str(caught.value), str(caught.value)


def _paper_backbone_params(width: float) -> int:
    """MobileNetV2's feature parameters counted from the paper's Table 2, independently of the module: conv
    weights (no bias) and each BatchNorm's weight and bias; channels rounded to multiples of 8 as
    torchvision's _make_divisible does (nearest, never more than 10% down); the last conv keeps 1280 below
    width 1."""

    def divisible(v: float) -> int:
        n = max(8, int(v + 4) // 8 * 8)
        return n + 8 if n < 0.9 * v else n

    def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
        return cout * (cin // groups) * k * k + 2 * cout

    table = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)]  # t, c, n
    cin = divisible(32 * width)
    total = conv_bn(3, cin, 3)
    for t, c, n in table:
        cout = divisible(c * width)
        for _ in range(n):
            hidden = cin * t
            total += (conv_bn(cin, hidden, 1) if t != 1 else 0) + conv_bn(hidden, hidden, 3, hidden)
            total += conv_bn(hidden, cout, 1)
            cin = cout
    return total + conv_bn(cin, divisible(1280 * max(1.0, width)), 1)


@pytest.mark.parametrize("width", [0.35, 0.5, 1.0, 1.4])
def test_backbone_has_the_papers_layers_at_every_width(width):
    """The count of 4.0-4.2 M for the whole network at width 1 let a dropped or added block, an expansion conv
    in the first (t = 1) block or the last conv shrunk below width 1 pass: the backbone is counted exactly."""
    from dpupose.model.mobilenetv2 import MobileNetV2Features, make_divisible

    backbone = MobileNetV2Features(width)
    assert count_params(backbone) == _paper_backbone_params(width)
    if width == 1.0:  # torchvision's mobilenet_v2: 3,504,872 parameters, less its 1280 x 1000 classifier
        assert count_params(backbone) == 3_504_872 - 1_281_000
    assert backbone.out_channels == (1280 if width <= 1 else make_divisible(1280 * width))
    # 32 x 0.35 = 11.2 rounds to 8, 29% down: one step up instead; 16 x 0.35 = 5.6 goes up to the minimum 8
    assert (make_divisible(11.2), make_divisible(5.6), make_divisible(44.8), make_divisible(20)) == (16, 8, 48, 24)


def test_backbone_activations_are_relu6():
    from dpupose.model.mobilenetv2 import ConvBNReLU6, MobileNetV2Features

    backbone = MobileNetV2Features(0.35).eval()  # fresh BatchNorm: the identity in eval mode
    outs = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in backbone.modules()
             if isinstance(m, ConvBNReLU6)]  # fmt: skip
    with torch.no_grad():
        backbone(torch.full((1, 3, 64, 64), 100.0))
    for h in hooks:
        h.remove()
    assert max(o.max().item() for o in outs) == 6.0  # capped at 6, which large inputs reach
    assert min(o.min().item() for o in outs) == 0.0


def test_a_width_of_zero_is_refused():
    for width in (0, 0.0, -0.5):
        with pytest.raises(ValueError, match="width_mult must be a positive number"):
            ModelConfig(width_mult=width)


def test_onnx_export_and_mac_counting_leave_the_module_in_the_mode_it_was_in(tmp_path):
    from dpupose.model.export import export_onnx

    for training in (True, False):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train(training)
        export_onnx(net, torch.zeros(1, 3, 8, 8), tmp_path / "m.onnx", ["x"], ["y"])
        assert [m.training for m in net.modules()] == [training] * 3
        assert (tmp_path / "m.onnx").stat().st_size > 0
        assert count_macs(net, (3, 8, 8)) == 4 * 6 * 6 * 3 * 3 * 3  # and so does counting its MACs
        assert [m.training for m in net.modules()] == [training] * 3


def test_mac_counts_of_depthwise_pointwise_and_linear_layers_are_their_closed_forms():
    """A 3x3 depthwise conv (one input channel per output), a 1x3 conv and a linear layer over a 4 x 5 x 5
    input: 100 outputs x 9, 150 outputs x 4 inputs x 3, 7 outputs x 150 inputs (the BatchNorm between them
    none). Counting twice gives the same, leaves no hook on the model and, run in eval mode, leaves the
    BatchNorm's statistics as they were in a model being trained."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
        torch.nn.Conv2d(4, 6, (1, 3), padding=(0, 1)),
        torch.nn.BatchNorm2d(6),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 5 * 5, 7),
    )
    expected = 4 * 5 * 5 * 9 + 6 * 5 * 5 * 4 * 3 + 7 * 150
    assert count_macs(net, (4, 5, 5)) == expected == 3750
    assert count_macs(net, (4, 5, 5)) == expected
    assert [dict(m._forward_hooks) for m in net.modules()] == [{}] * 6
    bn = net[2]
    assert net.training and bn.num_batches_tracked.item() == 0 and not bn.running_mean.any()


def test_an_inverted_residual_adds_its_input_only_at_stride_1_between_equal_widths():
    """With its last BatchNorm set to give -1 everywhere (weight 0, bias -1) a block's own path is -1, kept
    negative (the projection is linear, no ReLU6 after it): a block of stride 1 from 8 to 8 channels gives
    x - 1; from 8 to 16 channels, or at stride 2, only the -1. At width 1 the backbone has the paper's 10
    residual blocks (the repeats of stride 1: 1 + 2 + 3 + 2 + 2)."""
    from dpupose.model.mobilenetv2 import InvertedResidual, MobileNetV2Features

    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    for cin, cout, stride, residual in ((8, 8, 1, True), (8, 16, 1, False), (8, 8, 2, False)):
        block = InvertedResidual(cin, cout, stride, 6).eval()
        last = [m for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(-1.0)
            y = block(x)
        assert y.shape == (1, cout, 6 // stride, 6 // stride)
        assert torch.equal(y, x - 1 if residual else torch.full_like(y, -1.0)), (cin, cout, stride)
    blocks = [m for m in MobileNetV2Features(1.0).modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17 and sum(b.use_residual for b in blocks) == 10


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_onnx_export_folds_batchnorm_at_opset_17_and_names_a_dynamic_batch(tmp_path):
    """A conv and a BatchNorm with running statistics of their own, in training mode: the ONNX file (written
    into folders that are not there yet) holds one Conv and no BatchNormalization at opset 17, and gives what the
    module gives in eval mode (its running statistics, not the batch's). With dynamic_batch, every input and
    output's first dimension is the symbol "batch" (the runtime feeds any batch); without, the example's 1."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from dpupose.model.export import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net.train()
    x = torch.randn(2, 3, 8, 8)
    for dynamic in (True, False):
        path = export_onnx(net, x[:1], tmp_path / "a" / "b" / "m.onnx", ["x"], ["y"], dynamic_batch=dynamic)
        model = onnx.load(path)
        assert [op.version for op in model.opset_import if op.domain in ("", "ai.onnx")] == [17]
        assert [node.op_type for node in model.graph.node] == ["Conv"]
        first = [v.type.tensor_type.shape.dim[0] for v in (*model.graph.input, *model.graph.output)]
        dims = [d.dim_param or d.dim_value for d in first]
        assert dims == (["batch", "batch"] if dynamic else [1, 1])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = x if dynamic else x[:1]
        with torch.no_grad():
            want = net.eval()(feed).numpy()
        net.train()
        np.testing.assert_allclose(session.run(None, {"x": feed.numpy()})[0], want, rtol=1e-4, atol=1e-5)


def test_onnx_export_writes_a_file_whose_name_is_not_utf8(tmp_path):
    """A name of bytes that are not UTF-8 (os.fsdecode gives surrogates for them), which torch's exporter takes
    only as UTF-8 when given the name: the file is written under that name and holds the module."""
    import os

    import onnx

    from dpupose.model.export import export_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    path = tmp_path / os.fsdecode(b"m\xff\xfe.onnx")
    assert export_onnx(net, torch.randn(1, 3, 8, 8), path, ["x"], ["y"]) == path
    assert os.listdir(os.fsencode(tmp_path)) == [b"m\xff\xfe.onnx"]
    assert [node.op_type for node in onnx.load(path).graph.node] == ["Conv", "Relu"]
