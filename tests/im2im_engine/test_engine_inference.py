import numpy as np
import pytest
import torch

from im2im_engine import Engine, Sample
from im2im_engine.data import normalize
from im2im_engine.inference import reduce_map


@pytest.fixture(scope="module")
def trained(disk_data):
    from im2im_engine import load_config

    from_overrides = {
        "data": {"patch_size": [32, 32]}, "inference": {"roi_size": [32, 32], "sw_batch_size": 3},
        "model": {"params": {"channels": [8, 16], "strides": [2], "num_res_units": 1}, "head_features": 8},
        "training": {"steps": 25, "batch_size": 4, "lr": 0.01, "val_every": 100}, "uncertainty": {"passes": 6},
    }
    eng = Engine.from_config(load_config(from_overrides))
    eng.train([Sample(im, (gt > 0).astype(np.int32)) for im, gt in disk_data[:3]])
    return eng


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_sliding_window_matches_monai(trained, disk_data, mode):
    from monai.inferers import sliding_window_inference

    trained.config.inference.mode = mode
    image = np.tile(disk_data[3][0], (1, 2, 2))[:, :90, :77]  # not a multiple of the ROI
    pred = trained.predict(image)
    x = torch.from_numpy(normalize(image, trained.config.data))[None]
    with torch.no_grad():
        ref = sliding_window_inference(x, [32, 32], 3, lambda w: torch.softmax(trained.net(w), 1), overlap=0.25,
                                       mode=mode)[0].numpy()
    trained.config.inference.mode = "gaussian"
    assert pred.output.shape == (2, 90, 77)
    np.testing.assert_allclose(pred.output, ref, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, ref.argmax(0))


def test_small_image_is_padded(trained):
    image = np.random.default_rng(0).random((1, 20, 13)).astype(np.float32)
    pred = trained.predict(image)
    assert pred.output.shape == (2, 20, 13) and pred.labels.shape == (20, 13)
    assert pred.labels.dtype == np.int32 and pred.output.dtype == np.float32
    assert pred.embedding.shape == (8,) and np.isfinite(pred.embedding).all()


def test_accepts_2d_array_and_integer_dtype(trained, disk_data):
    image = (disk_data[0][0][0] * 1000 + 2000).astype(np.uint16)
    assert trained.predict(image).labels.shape == image.shape


def test_wrong_channels_is_clear(trained):
    with pytest.raises(ValueError, match="in_channels=1"):
        trained.predict(np.zeros((2, 32, 32), np.float32))


@pytest.mark.parametrize("method", ["entropy", "margin", "least_confidence", "bald", "variance", "tta"])
def test_uncertainty_map_and_score(trained, disk_data, method):
    unc = trained.uncertainty(disk_data[3][0], method)
    assert unc.map.shape == (64, 64) and unc.map.dtype == np.float32
    assert np.isfinite(unc.map).all()
    if method != "variance":
        assert unc.map.min() >= 0.0 and unc.map.max() <= 1.0 + 1e-6
    assert unc.score == pytest.approx(float(unc.map.mean()), rel=1e-5, abs=1e-7)
    assert unc.embedding.shape == (8,)
    assert unc.prediction.labels.shape == (64, 64)
    if method in ("bald", "variance", "tta"):
        assert {"entropy", "margin", "least_confidence", "bald", "variance"} <= set(unc.scores)


def test_uncertainty_prediction_equals_predict(trained, disk_data):
    image = disk_data[2][0]
    np.testing.assert_allclose(trained.uncertainty(image, "bald").prediction.output, trained.predict(image).output,
                               atol=1e-6)


def test_uncertainty_higher_on_wrong_pixels(trained, make_disks):
    """AUROC of the entropy map for separating wrong from right pixels must be clearly above chance."""
    aucs = []
    for seed in (20, 21, 22):
        image, gt = make_disks(seed)
        image = image + np.random.default_rng(seed).normal(0, 0.4, image.shape).astype(np.float32)  # harder
        for method in ("entropy", "bald"):
            unc = trained.uncertainty(image, method)
            wrong = (unc.prediction.labels > 0) != (gt > 0)
            if wrong.sum() < 5:
                continue
            u = unc.map.ravel()
            ranks = np.argsort(np.argsort(u)) + 1
            n_w, n_r = int(wrong.sum()), int((~wrong).sum())
            aucs.append((ranks[wrong.ravel()].sum() - n_w * (n_w + 1) / 2) / (n_w * n_r))
    assert aucs and np.mean(aucs) > 0.8


def test_topk_reduction():
    u = np.zeros(100, np.float32)
    u[:10] = 1.0
    assert reduce_map(u, "mean") == pytest.approx(0.1)
    assert reduce_map(u, "topk", 10) == pytest.approx(1.0)
    assert reduce_map(u, "topk", 20) == pytest.approx(0.5)


def test_3d_uncertainty(tiny_cfg, make_disks):
    eng = Engine.from_config(tiny_cfg(spatial_dims=3, uncertainty={"method": "tta", "passes": 8}))
    image, _ = make_disks(0, size=32, three_d=True)
    unc = eng.uncertainty(image)
    assert unc.map.shape == (16, 32, 32) and unc.prediction.output.shape == (2, 16, 32, 32)
