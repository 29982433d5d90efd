"""Noise2Void / N2V2: the masking, the masked loss, the N2V2 network options, 2D/3D and channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from im2im_engine import ConfigError, Engine, Sample, load_config
from im2im_engine.n2v import Masker, mirrored, n2v_loss, stratified_coords, to_raw_units, window_offsets


def denoise_cfg(spatial_dims: int = 2, channels: int = 1, **n2v):
    patch = [32, 32] if spatial_dims == 2 else [12, 24, 24]
    return load_config({
        "data": {"spatial_dims": spatial_dims, "in_channels": channels, "patch_size": patch,
                 "normalization": "zscore"},
        "model": {"name": "UNet", "params": {"channels": [8, 16], "strides": [2], "num_res_units": 0},
                  "head_features": 8, "dropout": 0.0},
        "task": {"kind": "denoise", "n2v": n2v},
        "training": {"steps": 4, "batch_size": 2, "lr": 1e-3},
        "inference": {"roi_size": patch, "sw_batch_size": 2},
        "uncertainty": {"passes": 2},
    })


def test_masked_fraction_is_the_configured_percent_and_stratified():
    rng = np.random.default_rng(0)
    shape = (64, 64)
    plane, coords = stratified_coords(shape, 2.0, 200, rng)  # one pixel per 50-pixel box
    per_plane = np.bincount(plane, minlength=200)
    assert abs(per_plane.mean() / (64 * 64) - 0.02) < 0.001
    # stratified: no holes (every window of two strata holds a point), no clumps (two points of one plane are
    # never closer than in neighbouring strata allow)
    pts = coords[plane == 0]
    span = int(np.ceil(2 * 50 ** 0.5))
    for y0 in range(0, 64 - span + 1, span):
        for x0 in range(0, 64 - span + 1, span):
            inside = (pts[:, 0] >= y0) & (pts[:, 0] < y0 + span) & (pts[:, 1] >= x0) & (pts[:, 1] < x0 + span)
            assert inside.any(), (y0, x0)
    counts = np.histogram2d(pts[:, 0], pts[:, 1], bins=[np.arange(0, 65, span)] * 2)[0]
    assert counts.max() <= 9  # at most the 3x3 strata a 2-strata window can touch


@pytest.mark.parametrize("strategy", ["uniform", "median"])
def test_mask_changes_only_masked_pixels_at_the_configured_rate(strategy):
    cfg = denoise_cfg(masked_percent=1.0, strategy=strategy)
    x = np.random.default_rng(1).normal(size=(8, 1, 32, 32)).astype(np.float32)
    masked, mask = Masker(cfg, seed=3).mask(x)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert abs(mask.mean() - 0.01) < 0.004
    assert np.array_equal(masked[mask == 0], x[mask == 0])
    assert np.all(masked[mask == 1] != x[mask == 1])  # continuous values: a replacement is never the pixel


def test_centre_is_never_its_own_replacement_even_at_borders():
    offs = window_offsets(2, 5)
    assert len(offs) == 24 and not (offs == 0).all(1).any()
    shape = (5, 5)
    corners = np.array([[0, 0], [0, 4], [4, 0], [4, 4], [2, 2], [0, 2]])
    for c in corners:
        src = mirrored(np.repeat(c[None], len(offs), 0), offs, shape)
        assert ((src >= 0) & (src < 5)).all()
        assert not (src == c).all(1).any()


def test_uniform_replacement_comes_from_the_window():
    cfg = denoise_cfg(masked_percent=1.0, window=3)
    size = 32
    x = np.arange(size * size, dtype=np.float32).reshape(1, 1, size, size)  # value encodes the position
    masked, mask = Masker(cfg, seed=0).mask(np.repeat(x, 4, 0))
    for b, _, yy, xx in zip(*np.nonzero(mask), strict=True):
        v = int(masked[b, 0, yy, xx])
        sy, sx = divmod(v, size)
        assert max(abs(sy - yy), abs(sx - xx)) == 1  # a neighbour in the 3x3 window, not the centre


def test_median_replacement_is_the_median_without_the_centre_and_the_other_hidden_pixels():
    cfg = denoise_cfg(masked_percent=10.0, strategy="median", window=3)
    x = np.random.default_rng(2).normal(size=(4, 1, 32, 32)).astype(np.float32)
    masked, mask = Masker(cfg, seed=0).mask(x)
    seen_hidden_neighbour = False
    for b, _, yy, xx in np.argwhere(mask[:, :, 1:-1, 1:-1]) + np.array([0, 0, 1, 1]):
        win = x[b, 0, yy - 1:yy + 2, xx - 1:xx + 2].ravel()
        visible = mask[b, 0, yy - 1:yy + 2, xx - 1:xx + 2].ravel() == 0
        seen_hidden_neighbour |= not visible[np.arange(9) != 4].all()
        assert masked[b, 0, yy, xx] == pytest.approx(np.median(win[visible]))
    assert seen_hidden_neighbour  # at 10 % some windows hold another masked pixel: the case that matters


def test_no_hidden_value_reaches_the_input():
    """A replacement copied from another masked pixel would put that pixel's target into the input (for the
    median: the test above, whose medians are over the visible neighbours only)."""
    cfg = denoise_cfg(masked_percent=10.0, window=3)
    size = 32
    x = np.random.default_rng(4).permutation(4 * size * size).astype(np.float32).reshape(4, 1, size, size)
    masked, mask = Masker(cfg, seed=1).mask(x)
    for b in range(4):
        hidden = set(x[b, 0][mask[b, 0] == 1].tolist())
        assert not hidden & set(masked[b, 0].ravel().tolist())


def test_struct_mask_hides_the_line_and_never_takes_a_replacement_from_it():
    cfg = denoise_cfg(masked_percent=0.5, window=5, struct_mask={"axes": "horizontal", "span": 5})
    masker = Masker(cfg, seed=0)
    assert not (masker.offsets[:, 0] == 0).any()  # no candidate on the centre's row
    size = 32
    x = np.arange(size * size, dtype=np.float32).reshape(1, 1, size, size) + 10_000
    masked, mask = masker.mask(x)
    yy, xx = (int(v) for v in np.argwhere(mask[0, 0])[0])
    row = [(yy, c) for c in range(xx - 2, xx + 3) if c != xx and 0 <= c < size]
    assert all(masked[0, 0, r, c] != x[0, 0, r, c] for r, c in row)


def test_loss_counts_only_masked_pixels():
    pred = torch.zeros(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    weight = torch.zeros(2, 1, 8, 8)
    weight[0, 0, 3, 3] = 1
    target[0, 0, 3, 3] = 2.0
    target[1] = 100.0  # unmasked pixels, however wrong, do not count
    assert n2v_loss(pred, target, weight).item() == pytest.approx(4.0)
    assert n2v_loss(pred, target, weight, "l1").item() == pytest.approx(2.0)


def test_training_gradient_reaches_only_through_masked_pixels():
    """The engine's loss for a masked batch is blind to every unmasked output pixel."""
    from im2im_engine.losses import compute_loss

    cfg = denoise_cfg()
    x = np.random.default_rng(0).normal(size=(2, 1, 32, 32)).astype(np.float32)
    _, target, weight = Masker(cfg, seed=0)(x, np.zeros((2, 0, 32, 32)), np.ones((2, 32, 32), np.float32))
    out = torch.zeros(2, 1, 32, 32, requires_grad=True)
    compute_loss(cfg, out, torch.from_numpy(target), torch.from_numpy(weight)).backward()
    assert np.array_equal(out.grad.numpy() != 0, weight > 0)


def test_config_rules_for_denoise():
    cfg = denoise_cfg(channels=2)
    assert cfg.task.output_channels == 2 and cfg.uncertainty.method == "tta"
    assert cfg.task.resolved_loss == "mse"
    with pytest.raises(ConfigError, match=r"task\.n2v\.window: must be odd"):
        denoise_cfg(window=4)
    with pytest.raises(ConfigError, match=r"uncertainty\.method: must be tta for denoise"):
        load_config({"task": {"kind": "denoise"}, "uncertainty": {"method": "variance"}})
    with pytest.raises(ConfigError, match=r"patch_size: every size must be >= task\.n2v\.window"):
        load_config({"task": {"kind": "denoise", "n2v": {"window": 11}}, "data": {"patch_size": [8, 8]}})
    with pytest.raises(ConfigError, match=r"model\.blur_pool: only available for name UNet or CAREUNet"):
        load_config({"model": {"name": "BasicUNet", "blur_pool": True}})
    # the resolved config loads back to the same config (out_channels and method are now explicit)
    assert load_config(cfg.model_dump(mode="json")) == cfg


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_n2v2_unet_options_build_and_keep_shapes(spatial_dims):
    from im2im_engine.n2v_nets import BlurPool, N2V2UNet
    from im2im_engine.networks import build_network

    cfg = denoise_cfg(spatial_dims)
    cfg = load_config(cfg.model_dump(mode="json"), {"model": {"blur_pool": True, "top_skip": False}})
    net = build_network(cfg).eval()
    assert isinstance(net.backbone, N2V2UNet)
    assert any(isinstance(m, BlurPool) for m in net.modules())
    from monai.networks.layers.simplelayers import SkipConnection

    assert not isinstance(net.backbone.model[1], SkipConnection)  # the top skip is gone
    x = torch.randn(1, 1, *cfg.data.patch_size)
    assert net(x).shape == x.shape


# Parameter counts of CAREamics' UNet (careamics.models.unet.UNet, depth 2, 32 initial channels, batch norm,
# 1 channel in and out; n2v2 = MaxBlurPool and no top skip), read off CAREamics 0.1 in its own venv.
CAREAMICS_PARAMS = {(2, False): 333729, (3, False): 997857, (2, True): 324513, (3, True): 970209}
CAREAMICS_BN_PARAMS = 2 * (32 + 32 + 64 + 64 + 128 + 64 + 64 + 32 + 32 + 32)  # scale + shift of its 10 BN layers


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("n2v2", [False, True])
def test_denoise_presets_build_careamics_unet_without_batch_norm(spatial_dims, n2v2):
    """The presets' network is CAREamics' UNet layer for layer (same parameter count, 1x1 head included),
    except that the presets leave batch norm out (see the presets' comment)."""
    from im2im_engine.config import preset_dir
    from im2im_engine.n2v_nets import CAREUNet, MaxBlurPool
    from im2im_engine.networks import build_network, total_stride

    raw = yaml.safe_load((preset_dir() / f"denoise_n2v_{spatial_dims}d.yaml").read_text())
    raw.pop("loop")  # the active-learning layer's section
    cfg = load_config(raw, {"model": {"blur_pool": n2v2, "top_skip": not n2v2}})
    net = build_network(cfg).eval()
    assert isinstance(net.backbone, CAREUNet)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert sum(p.numel() for p in net.parameters()) == CAREAMICS_PARAMS[(spatial_dims, n2v2)] - CAREAMICS_BN_PARAMS
    with_bn = build_network(load_config(cfg.model_dump(mode="json"), {"model": {"params": {"use_batch_norm": True}}}))
    assert sum(p.numel() for p in with_bn.parameters()) == CAREAMICS_PARAMS[(spatial_dims, n2v2)]
    assert any(isinstance(m, MaxBlurPool) for m in net.modules()) == n2v2
    convs = [m for m in net.backbone.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert len(convs) == 10  # two per block: 2 down, bottleneck, 2 up
    assert total_stride(cfg) == ([4, 4] if spatial_dims == 2 else [1, 4, 4])  # 3D: Z is not pooled
    x = torch.randn(2, 1, *cfg.data.patch_size)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_careunet_without_top_skip_ignores_the_full_resolution_features():
    """top_skip: false: the last block sees only the up-sampled path, so its input has no skip channels."""
    from im2im_engine.n2v_nets import CAREUNet

    with_skip, without = CAREUNet(2, 1, 8, num_channels_init=8), CAREUNet(2, 1, 8, num_channels_init=8, top_skip=False)
    assert with_skip.up[-1][0].in_channels == 16 and without.up[-1][0].in_channels == 8
    assert with_skip.up[0][0].in_channels == without.up[0][0].in_channels == 32  # deeper skips stay


def test_careunet_anisotropic_pool_keeps_z():
    from im2im_engine.n2v_nets import CAREUNet
    from im2im_engine.networks import total_stride

    net = CAREUNet(3, 1, 4, depth=2, num_channels_init=4, pool=[1, 2, 2], blur_pool=True).eval()
    x = torch.randn(1, 1, 3, 16, 16)
    with torch.no_grad():
        assert net.pools[0](net.down[0](x)).shape[2:] == (3, 8, 8)
        assert net(x).shape == (1, 4, 3, 16, 16)
    cfg = load_config({"data": {"spatial_dims": 3, "patch_size": [12, 32, 32]},
                       "inference": {"roi_size": [12, 32, 32]},
                       "model": {"name": "CAREUNet", "params": {"pool": [1, 2, 2], "depth": 3}}})
    assert total_stride(cfg) == [1, 8, 8]
    with pytest.raises(ConfigError, match=r"model\.params\.blur_pool: set model\.blur_pool instead"):
        load_config({"model": {"name": "CAREUNet", "params": {"blur_pool": True}}})


def test_blur_pool_keeps_a_constant_image_constant():
    from im2im_engine.n2v_nets import BlurPool

    pool = BlurPool(2, 3, 2)
    y = pool(torch.full((1, 3, 8, 8), 5.0))
    assert y.shape == (1, 3, 4, 4) and torch.allclose(y, torch.full_like(y, 5.0))


def test_independent_channels_do_not_see_each_other():
    cfg = denoise_cfg(channels=2)
    eng = Engine.from_config(cfg, device="cpu")
    x = torch.randn(1, 2, 32, 32)
    y = eng.net(x)
    x2 = x.clone()
    x2[:, 1] = torch.randn(32, 32)  # change channel 1 only
    assert torch.allclose(eng.net(x2)[:, 0], y[:, 0]) and not torch.allclose(eng.net(x2)[:, 1], y[:, 1])
    joint = Engine.from_config(load_config(cfg.model_dump(mode="json"),
                                           {"task": {"n2v": {"independent_channels": False}}}), device="cpu")
    assert not torch.allclose(joint.net(x2)[:, 0], joint.net(x)[:, 0])


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_denoise_trains_without_targets_and_scores_by_tta_variance(spatial_dims):
    cfg = denoise_cfg(spatial_dims, strategy="median")
    shape = (32, 32) if spatial_dims == 2 else (12, 24, 24)
    image = np.random.default_rng(0).poisson(20.0, shape).astype(np.float32)
    eng = Engine.from_config(cfg, device="cpu")
    res = eng.train([Sample(image, None, None, "a")], steps=3)
    assert res.steps == 3 and all(np.isfinite(h["loss"]) for h in res.history)
    unc = eng.uncertainty(image[None])
    assert unc.method == "tta" and unc.map.shape == shape and unc.prediction.labels is None
    assert unc.prediction.output.shape == (1, *shape) and unc.score >= 0


def test_to_raw_units_inverts_the_normalisation():
    cfg = denoise_cfg()
    from im2im_engine.data import normalize

    image = np.random.default_rng(0).gamma(2.0, 50.0, (1, 32, 32)).astype(np.float32)
    back = to_raw_units(normalize(image, cfg.data), image, cfg)
    assert np.allclose(back, image, rtol=1e-4, atol=1e-3)


def test_evaluate_denoise_against_clean_truth_in_raw_units():
    cfg = denoise_cfg()
    rng = np.random.default_rng(0)
    clean = rng.uniform(50, 150, (32, 32)).astype(np.float32)
    eng = Engine.from_config(cfg, device="cpu")
    m = eng.evaluate([Sample(clean + rng.normal(0, 5, clean.shape).astype(np.float32), clean, None, "a")])
    assert set(m) == {"psnr", "ssim"} and np.isfinite(m["psnr"])
