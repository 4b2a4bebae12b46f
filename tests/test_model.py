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
