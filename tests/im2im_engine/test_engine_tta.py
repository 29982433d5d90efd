"""Output test-time augmentation (``inference.tta``): the symmetries trained on, their inverses, the averaged
output in the engine and in the exported-model runner, and the TTA uncertainty left as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from im2im_engine import Engine, load_config
from im2im_engine import tta as T
from im2im_engine.export import export_model
from im2im_engine.exported import ExportedModel


def cfg_with(flips: bool = True, rot90: bool = True, patch=(32, 32), tta: bool = True, kind: str = "denoise",
             spatial_dims: int = 2):
    if spatial_dims == 3:
        patch = (12, *patch)
    return load_config({
        "data": {"spatial_dims": spatial_dims, "patch_size": list(patch), "normalization": "zscore",
                 "augmentation": {"flips": flips, "rot90": rot90}},
        "model": {"name": "UNet", "params": {"channels": [8, 16], "strides": [2], "num_res_units": 0},
                  "head_features": 8, "dropout": 0.0},
        "task": {"kind": kind},
        "inference": {"roi_size": list(patch), "sw_batch_size": 2, "tta": tta},
        "uncertainty": {"passes": 4, "method": "tta"},
    })


@pytest.mark.parametrize(("flips", "rot90", "patch", "n"), [
    (True, True, (32, 32), 8), (True, False, (32, 32), 4), (False, True, (32, 32), 4), (False, False, (32, 32), 1),
    (True, True, (32, 48), 4),  # not square: the sampler never turns such patches, so neither does TTA
])
def test_symmetries_are_those_trained_on(flips, rot90, patch, n):
    syms = T.symmetries(cfg_with(flips, rot90, patch))
    assert syms[0] == T.IDENTITY and len(syms) == n
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    images = {tuple(T.apply(x, s).flatten().tolist()) for s in syms}
    assert len(images) == n  # all distinct transforms
    if not rot90 or patch[0] != patch[1]:  # flips only: nothing that a flip of Y and/or X would not give
        flips_of_x = {tuple(torch.flip(x, a).flatten().tolist()) for a in [(), (2,), (3,), (2, 3)]}
        assert images <= flips_of_x


def test_undo_inverts_apply_and_from_flips_names_the_same_transform():
    x = torch.randn(2, 1, 3, 6, 6)
    for s in T.symmetries(cfg_with(spatial_dims=3)):
        assert torch.equal(T.undo(T.apply(x, s), s), x)
    for axes in [(), (3,), (4,), (3, 4)]:
        assert torch.equal(T.apply(x, T.from_flips(axes, 3)), torch.flip(x, axes))
    assert T.from_flips((2,), 3) is None and T.from_flips((2, 4), 3) is None  # Z flips are not YX symmetries


def _square_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 20.0, (1, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("kind", ["denoise", "semantic"])
def test_tta_output_is_the_mean_of_the_transformed_plain_passes_and_equivariant(kind):
    """One 32² window: the averaged output is exactly the mean of eight plain predictions of turned and
    flipped copies (each turned back), so it turns and flips with its input; one plain pass does not.
    For segmentation the probabilities are averaged and the labels follow them."""
    eng = Engine.from_config(cfg_with(kind=kind), device="cpu")
    image = _square_image()
    out = eng.predict(image).output
    manual = np.zeros_like(out)
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(image, k, axes=(1, 2))
            x = x[:, :, ::-1] if flip else x
            y = eng.predict(np.ascontiguousarray(x), tta=False).output
            y = y[:, :, ::-1] if flip else y
            manual += np.rot90(y, -k, axes=(1, 2))
    np.testing.assert_allclose(out, manual / 8, atol=1e-5)
    turned = np.ascontiguousarray(np.rot90(image, 1, axes=(1, 2)))
    np.testing.assert_allclose(eng.predict(turned).output, np.rot90(out, 1, axes=(1, 2)), atol=1e-5)
    plain, plain_turned = eng.predict(image, tta=False).output, eng.predict(turned, tta=False).output
    assert np.abs(plain_turned - np.rot90(plain, 1, axes=(1, 2))).max() > 1e-3
    if kind == "semantic":
        labels = eng.predict(image).labels
        np.testing.assert_array_equal(labels, np.argmax(out, 0))


def test_tta_keeps_the_uncertainty_and_averages_the_scored_output():
    """The TTA variance (uncertainty.passes flips) is the same with the output averaged or not; the scored
    output is the averaged one, what predict gives."""
    image = _square_image(1)
    on = Engine.from_config(cfg_with(tta=True), device="cpu")
    off = Engine.from_config(cfg_with(tta=False), device="cpu")
    u_on, u_off = on.uncertainty(image), off.uncertainty(image)
    np.testing.assert_allclose(u_on.map, u_off.map, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(u_on.prediction.output, on.predict(image).output, atol=1e-6)
    np.testing.assert_allclose(u_off.prediction.output, off.predict(image).output, atol=1e-6)
    assert np.abs(u_on.prediction.output - u_off.prediction.output).max() > 1e-4


def test_sliding_windows_with_tta_on_an_image_larger_than_the_window():
    eng = Engine.from_config(cfg_with(), device="cpu")
    image = np.random.default_rng(2).gamma(2.0, 20.0, (1, 70, 53)).astype(np.float32)
    out = eng.predict(image).output
    assert out.shape == (1, 70, 53) and np.isfinite(out).all()
    assert np.abs(out - eng.predict(image, tta=False).output).max() > 1e-4


def test_exported_runner_averages_like_the_app(tmp_path: Path):
    """``im2im-active predict --model`` gives what the app gives: the exported graph is one pass, the
    runner applies the config's TTA; the export's own check compares the graph with one engine pass."""
    eng = Engine.from_config(cfg_with(), device="cpu")
    image = np.random.default_rng(3).gamma(2.0, 20.0, (1, 40, 36)).astype(np.float32)
    result = export_model(eng, "torchscript", tmp_path / "ts")
    model = ExportedModel(result.path)
    got, want = model.predict(image).output, eng.predict(image).output
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(got - eng.predict(image, tta=False).output).max() > 1e-4
    assert "8 flips / quarter turns" in (result.path / "README.md").read_text()
