"""Rules of im2im_engine.auto on fingerprints of tiny, large, anisotropic 3D and multi-channel data; the
fingerprint itself; k-fold, summary and choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from im2im_engine import auto, load_config
from im2im_engine.networks import build_network, total_stride

GIB = 2**30


def fp(shape, n=10, channels=1, spacing=None, objects=None, fg=0.2, task="semantic", signed=False,
       levels=2000, dtype="uint16") -> auto.Fingerprint:
    d = len(shape)
    lo = -1.0 if signed else 100.0
    return auto.Fingerprint(
        spatial_dims=d, n_images=n, channels=channels, median_shape=list(shape), min_shape=list(shape),
        max_shape=list(shape), total_voxels=n * int(np.prod(shape)), spacing=list(spacing or [1.0] * d),
        dtype="float32" if signed else dtype,
        intensity=[{"p0_5": lo, "p50": 0.0, "p99_5": 1.0, "min": lo, "max": 2.0, "mean": 0.1, "std": 0.5}] * channels,
        distinct_levels=levels, object_size=objects, foreground_fraction=fg, task=task)


def base(d=2, channels=1, task="semantic") -> dict:
    patch = [64, 64] if d == 2 else [16, 64, 64]
    strides = [2, 2] if d == 2 else [[1, 2, 2], [2, 2, 2]]
    return {"data": {"spatial_dims": d, "in_channels": channels, "patch_size": patch},
            "model": {"name": "UNet", "params": {"channels": [16, 32, 64], "strides": strides, "num_res_units": 1}},
            "task": {"kind": task}, "inference": {"roi_size": patch},
            "uncertainty": {"method": "variance" if task == "regression" else "entropy"}}


def check_candidate(c: auto.Candidate, fingerprint: auto.Fingerprint) -> None:
    """Sizes within the images and divisible by the stride; the network builds and runs a window."""
    cfg = load_config(c.config)
    stride = total_stride(cfg)
    for key, sizes in (("patch", cfg.data.patch_size), ("window", cfg.inference.roi_size)):
        assert all(s <= m for s, m in zip(sizes, fingerprint.min_shape, strict=True)), (c.name, key, sizes)
        assert all(s % k == 0 for s, k in zip(sizes, stride, strict=True)), (c.name, key, sizes, stride)
    if c.name == "current":
        return
    net = build_network(cfg).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, cfg.data.in_channels, *cfg.inference.roi_size))
    assert out.shape[2:] == tuple(cfg.inference.roi_size)


def test_tiny_images_never_get_a_larger_patch_or_window() -> None:
    f = fp((24, 20), n=6, objects=[5.0, 5.0])
    plan = auto.derive(f)
    assert all(p <= m for p, m in zip(plan.patch, (24, 20), strict=True))
    assert all(r <= m for r, m in zip(plan.roi, (24, 20), strict=True))
    assert all(p % s == 0 for p, s in zip(plan.patch, plan.total_stride, strict=True))
    assert len(plan.strides) >= 1  # MONAI's UNet needs two levels at least
    cands = auto.plan(f, base(), memory_bytes=8 * GIB)
    assert [c.name for c in cands][:2] == ["current", "rules"]
    for c in cands[1:]:
        check_candidate(c, f)


def test_images_below_four_pixels_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        auto.derive(fp((3, 40)))


def test_large_images_patch_from_compute_budget_and_objects() -> None:
    f = fp((2048, 2048), n=40, objects=[30.0, 30.0], fg=0.3)
    plan = auto.derive(f, device="cpu", memory_bytes=16 * GIB)
    assert plan.patch[0] == plan.patch[1]  # isotropic data: a square patch (rot90 augmentation applies)
    assert plan.patch[0] >= 60  # at least two objects across
    assert plan.batch_size * np.prod(plan.patch) <= auto.VOXELS_PER_STEP[("cpu", 2)]
    assert plan.batch_size >= auto.MIN_BATCH
    assert len(plan.strides) == 4  # pooled while >= 8 voxels, capped by the CPU depth and the object size
    assert plan.channels == [16, 32, 64, 128, 128]
    assert plan.roi == [2 * p for p in plan.patch]
    gpu = auto.derive(f, device="cuda", memory_bytes=80 * GIB)
    assert np.prod(gpu.patch) > np.prod(plan.patch) and gpu.channels[0] == 32
    for c in auto.plan(f, base(), memory_bytes=16 * GIB, max_candidates=6):
        check_candidate(c, f)


def test_batch_size_follows_the_memory_budget() -> None:
    f = fp((512, 512), n=400, objects=[20.0, 20.0])
    small = auto.derive(f, device="cuda", memory_bytes=1 * GIB)
    big = auto.derive(f, device="cuda", memory_bytes=80 * GIB)
    assert small.patch == big.patch
    assert small.batch_size < big.batch_size
    assert any("limited by memory" in r for r in small.rules)


def test_a_small_data_set_limits_the_batch_to_five_percent_of_it() -> None:
    f = fp((512, 512), n=2, objects=[20.0, 20.0])
    plan = auto.derive(f, device="cuda", memory_bytes=80 * GIB)
    assert plan.batch_size == auto.MIN_BATCH
    assert any("5% of the data" in r for r in plan.rules)


def test_anisotropic_3d_pools_z_only_once_in_plane_caught_up() -> None:
    f = fp((40, 512, 512), spacing=[2.0, 0.5, 0.5], objects=[5.0, 20.0, 20.0])
    plan = auto.derive(f, device="cpu", memory_bytes=16 * GIB)
    # Z spacing 4x coarser: pooled only once in-plane pooling brought the ratio to 2 (nnU-Net's rule)
    assert plan.strides[0] == [1, 2, 2] and plan.strides[1] == [2, 2, 2]
    assert plan.patch[0] <= 40 and plan.patch[1] == plan.patch[2]
    assert plan.patch[0] * 2.0 <= plan.patch[1] * 0.5 * 1.5  # Z shrunk less: the patch is about isotropic
    assert plan.roi[0] == plan.patch[0]  # the window grows in-plane only
    assert any("not pooled at first" in r for r in plan.rules)
    for c in auto.plan(f, base(3), memory_bytes=16 * GIB):
        check_candidate(c, f)


def test_multichannel_signed_data_get_zscore_and_the_channels_must_fit() -> None:
    f = fp((128, 128), channels=3, signed=True, objects=[12.0, 12.0], fg=0.05)
    plan = auto.derive(f)
    assert plan.normalization == "zscore"
    assert plan.foreground_fraction == pytest.approx(0.67)  # rare foreground: oversampled
    cands = auto.plan(f, base(channels=3), memory_bytes=8 * GIB)
    for c in cands:
        check_candidate(c, f)
        assert c.config["data"]["in_channels"] == 3
    with pytest.raises(ValueError, match="3 channels"):
        auto.plan(f, base(channels=1))
    assert auto.derive(fp((64, 64), levels=2)).normalization == "minmax"
    assert auto.derive(fp((64, 64))).normalization == "percentile"


def test_the_current_configuration_is_always_the_first_candidate_unchanged() -> None:
    b = {**base(), "model": {"name": "SegResNet", "params": {"init_filters": 8, "blocks_down": [1, 2, 2],
                                                            "blocks_up": [1, 1]}}}
    f = fp((256, 256), objects=[20.0, 20.0])
    cands = auto.plan(f, b, memory_bytes=8 * GIB, max_candidates=6)
    assert cands[0].name == "current" and cands[0].config == load_config(b).model_dump(mode="json")
    assert cands[0].changes == {}
    names = [c.name for c in cands]
    assert len(names) == len(set(names)) == len({str(c.config) for c in cands})
    assert "rules" in names and all(c.config["model"]["name"] == "UNet" for c in cands[1:])  # params replaced
    assert len(auto.plan(f, b, memory_bytes=8 * GIB, max_candidates=2)) == 2
    regression = auto.plan(fp((64, 64), task="regression", objects=None, fg=None), base(task="regression"),
                           memory_bytes=8 * GIB, max_candidates=6)
    assert {c.config["task"]["loss"] for c in regression[1:]} <= {"l1", "mse"}


def test_fingerprint_measures_objects_foreground_and_spacing() -> None:
    label = np.zeros((64, 80), np.int32)
    label[10:20, 10:30] = 1  # 10 x 20
    label[40:50, 40:60] = 2
    image = np.random.default_rng(0).integers(100, 4000, (1, 64, 80)).astype(np.uint16)
    f = auto.fingerprint([image, image], [label, None], spacings=[(None, 0.5, 0.5), None],
                         shapes=[(64, 80), (64, 80), (32, 40)], task="instance", label_source="corrected")
    assert f.n_images == 3 and f.median_shape == [64, 80] and f.min_shape == [32, 40]
    assert f.object_size == [10.0, 20.0] and f.n_objects == 2 and f.n_labelled == 1
    assert f.foreground_fraction == pytest.approx(400 / (64 * 80))
    assert f.spacing == [0.5, 0.5] and f.channels == 1 and f.dtype == "uint16"
    assert auto.Fingerprint.from_dict(f.to_dict()) == f
    semantic = auto.fingerprint([image], [(label > 0).astype(np.uint8)], task="semantic")
    assert semantic.n_objects == 2  # foreground split into connected components
    with pytest.raises(ValueError, match="differ"):
        auto.fingerprint([image, np.zeros((2, 64, 80))])


def test_kfold_summary_and_choice() -> None:
    folds = auto.kfold(7, 3, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(7))
    assert sorted(len(f) for f in folds) == [2, 2, 3] and folds == auto.kfold(7, 3, seed=1)
    with pytest.raises(ValueError, match="at least 3"):
        auto.kfold(2, 3)
    mean, sd = auto.summarize([0.5, 0.7])
    assert mean == pytest.approx(0.6) and sd == pytest.approx(math.sqrt(0.02))
    assert auto.summarize([0.4]) == (0.4, 0.0)

    better = auto.choose({"current": {0: 0.5, 1: 0.6}, "rules": {0: 0.7, 1: 0.7}})
    assert better.name == "rules" and better.folds == [0, 1]
    tie = auto.choose({"current": {0: 0.5, 1: 0.6}, "rules": {0: 0.6, 1: 0.5}})
    assert tie.name == "current" and "current configuration was best" in tie.reason
    # a candidate missing a fold the reference finished does not compete
    partial = auto.choose({"current": {0: 0.5, 1: 0.6}, "rules": {0: 0.9}})
    assert partial.name == "current" and "rules" not in partial.means and "no other candidate" in partial.reason
    assert auto.choose({"current": {0: 0.5}, "rules": {0: 0.52}}, min_gain=0.05).name == "current"
