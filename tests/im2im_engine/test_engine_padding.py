"""Predictions never depend on how an image is padded: images smaller than the window, and the last windows.

A UNet with instance normalisation gives different outputs when a window is mostly zero padding; the engine
cuts the window to the image (rounded up to the network's stride, mirrored up to it) instead. The presets are
the real ones (a 256² window, a 128² training patch), untrained but seeded, which is where padding shows most.
"""

from __future__ import annotations

import numpy as np
import pytest

from im2im_engine import Engine, Sample, load_config
from im2im_engine.config import preset_dir
from im2im_engine.data import PatchSampler, prepare, training_patch
from im2im_engine.inference import fit_window


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.poisson(100, shape).astype(np.float32)
    grid = np.indices(shape).sum(0)
    return (img + 400 * (np.sin(grid / 7.0) > 0.6))[None]


def _engine(preset: str, **overrides) -> Engine:
    cfg = load_config(preset_dir() / preset, overrides or None)
    return Engine.from_config(cfg, device="cpu")


@pytest.mark.parametrize("preset", ["semantic_2d.yaml", "instance_2d.yaml", "denoise_2d.yaml"])
@pytest.mark.parametrize("shape", [(96, 96), (128, 128), (200, 130)])
def test_small_2d_image_predicts_as_with_the_window_cut_to_it(preset, shape):
    image = _image(shape)
    eng = _engine(preset)
    assert eng.config.inference.roi_size == [256, 256]
    cut = [-(-n // 4) * 4 for n in shape]  # the presets' UNet divides by 4
    ref = _engine(preset, inference={"roi_size": cut})
    out = eng.predict(image).output
    expected = ref.predict(image).output
    assert out.shape[1:] == shape
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # and it is not what zero padding gives: the test would catch the old behaviour
    zero = _engine(preset)
    zero.config.inference.roi_size = [256, 256]
    padded = np.zeros((1, 256, 256), np.float32)
    padded[(slice(None), *(slice(0, n) for n in shape))] = eng._prepare(image)
    from im2im_engine.inference import SlidingPredictor

    with_zeros = SlidingPredictor(zero.net, zero.config, zero.device).run(padded).output.numpy()
    assert np.abs(with_zeros[(slice(None), *(slice(0, n) for n in shape))] - expected).max() > 1e-3


@pytest.mark.parametrize("preset", ["semantic_3d.yaml", "instance_3d.yaml"])
def test_small_3d_stack_predicts_as_with_the_window_cut_to_it(preset):
    shape = (31, 61, 57)  # a real 3D nuclei stack's size: smaller than the window in Y and X
    image = _image(shape)
    eng = _engine(preset)
    ref = _engine(preset, inference={"roi_size": [16, 64, 60]})
    np.testing.assert_allclose(eng.predict(image).output, ref.predict(image).output, atol=1e-4)


def test_a_window_larger_than_the_image_changes_nothing():
    image = _image((120, 88))
    a = _engine("semantic_2d.yaml").predict(image).output
    b = _engine("semantic_2d.yaml", inference={"roi_size": [512, 512]}).predict(image).output
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_last_windows_along_the_edges_lie_inside_the_image():
    """An image larger than the window but not a multiple of it: no window is padded, so every output pixel
    matches MONAI's own sliding window over the unpadded image."""
    import torch
    from monai.inferers import sliding_window_inference

    eng = _engine("semantic_2d.yaml", inference={"roi_size": [64, 64], "sw_batch_size": 2})
    image = _image((150, 97))
    roi, padded = fit_window(eng._prepare(image), eng.config)
    assert roi == [64, 64] and padded.shape[1:] == (150, 97)
    x = torch.from_numpy(eng._prepare(image))[None]
    with torch.no_grad():
        ref = sliding_window_inference(x, [64, 64], 2, lambda w: torch.softmax(eng.net(w), 1), overlap=0.25,
                                       mode="gaussian", sigma_scale=0.125)[0].numpy()
    np.testing.assert_allclose(eng.predict(image).output, ref, atol=1e-5)


def test_uncertainty_uses_the_same_window():
    image = _image((100, 90))
    eng = _engine("semantic_2d.yaml")
    ref = _engine("semantic_2d.yaml", inference={"roi_size": [100, 92]})
    for method in ("entropy", "bald", "tta"):
        np.testing.assert_allclose(eng.uncertainty(image, method).map, ref.uncertainty(image, method).map, atol=1e-4)


def test_training_patches_are_cut_like_the_window():
    cfg = load_config(preset_dir() / "semantic_2d.yaml")
    assert cfg.data.patch_size == [128, 128]
    assert training_patch(cfg, [(96, 96), (90, 80)]) == [96, 96]
    assert training_patch(cfg, [(200, 130)]) == [128, 128]
    assert training_patch(cfg, [(70, 300)]) == [72, 128]  # rounded up to the stride: 2 mirrored rows
    rng = np.random.default_rng(0)
    samples = [Sample(_image((70, 300))[0], np.ones((70, 300), np.int32))]
    patch = training_patch(cfg, [(70, 300)])
    prepared = [prepare(s, cfg, rng, patch) for s in samples]
    x, _y, w = PatchSampler(prepared, cfg, rng, patch).batch(3)
    assert x.shape == (3, 1, 72, 128)
    # the two mirrored rows never train: weight 0 wherever the patch lies beyond the image
    assert (w.sum(axis=(1, 2)) <= 70 * 128).all()
