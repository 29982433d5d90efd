import copy

import numpy as np
import pytest
import torch

from im2im_engine import Engine, Sample
from im2im_engine.data import normalize
from im2im_engine.inference import (
    SlidingPredictor,
    reduce_map,
    stitch_budget,
    stitch_bytes,
    stitch_device,
    window_batch,
)


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
    """On the CPU the engine's stitching is MONAI's function to float rounding. Where the engine put the
    network on a GPU, its float32 prediction there (larger window batch, stitched on the device) is within
    1e-3 of the CPU's (TF32 convolutions allowed), and its bf16 one within the bound of the bf16 test."""
    from monai.inferers import sliding_window_inference

    cpu = Engine(trained.config, copy.deepcopy(trained.net), torch.device("cpu"))  # same weights, on the CPU
    image = np.tile(disk_data[3][0], (1, 2, 2))[:, :90, :77]  # not a multiple of the ROI
    x = torch.from_numpy(normalize(image, trained.config.data))[None]
    trained.config.inference.mode = mode
    try:
        pred = cpu.predict(image)
        with torch.no_grad():
            ref = sliding_window_inference(x, [32, 32], 3, lambda w: torch.softmax(cpu.net(w), 1), overlap=0.25,
                                           mode=mode)[0].numpy()
        on_device = None
        if trained.device.type != "cpu":
            fp32 = Engine(trained.config, trained.net, trained.device)
            fp32.amp_dtype = None
            on_device = (fp32.predict(image), trained.predict(image))
    finally:
        trained.config.inference.mode = "gaussian"
    assert pred.output.shape == (2, 90, 77)
    np.testing.assert_allclose(pred.output, ref, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, ref.argmax(0))
    if on_device is not None:
        np.testing.assert_allclose(on_device[0].output, ref, atol=1e-3)
        np.testing.assert_allclose(on_device[1].output, ref, atol=0.05)


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


def test_stitching_device_follows_the_budget():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")  # descriptors: no GPU needed
    assert stitch_device(cuda, 10, 100) == cuda
    assert stitch_device(cuda, 101, 100) == cpu  # does not fit: host memory
    assert stitch_device(cuda, 10, None) == cpu and stitch_device(cpu, 10, 100) == cpu
    assert stitch_budget(cpu) is None
    # a 4096² 2-class prediction: input + (2 channels + 1 count map) x 2
    assert stitch_bytes((4096, 4096), 1, 2, 1) == 4 * 4096 * 4096 * 7


def test_window_batch_grows_on_cuda_only(tiny_cfg):
    cfg = tiny_cfg(inference={"sw_batch_size": 3})
    assert window_batch(cfg, [256, 256], torch.device("cpu")) == 3
    assert window_batch(cfg, [256, 256], torch.device("cuda")) == 32
    assert window_batch(cfg, [16, 128, 128], torch.device("cuda")) == 8
    assert window_batch(cfg, [32, 32], torch.device("cuda")) == 64  # capped
    assert window_batch(tiny_cfg(inference={"sw_batch_size": 100}), [256, 256], torch.device("cuda")) == 100


def test_plan_tries_device_then_host_stitching(trained):
    cfg = trained.config
    big = SlidingPredictor(trained.net, cfg, torch.device("cuda"), budget=1 << 40)
    plan = big.plan((1, 90, 77), [32, 32], "mc")
    assert plan[0] == (torch.device("cuda"), 64)
    assert plan[1:] == [(torch.device("cpu"), 64), (torch.device("cpu"), 3), (torch.device("cpu"), 1)]
    small = SlidingPredictor(trained.net, cfg, torch.device("cuda"), budget=1000)
    assert small.plan((1, 90, 77), [32, 32], "plain")[0] == (torch.device("cpu"), 64)
    assert SlidingPredictor(trained.net, cfg, torch.device("cpu")).plan((1, 90, 77), [32, 32], "plain") == [
        (torch.device("cpu"), 3)]


def test_out_of_memory_retries_with_host_stitching(trained, disk_data, monkeypatch):
    """An OOM on the device is never the end: the image is redone with the next plan (same result)."""
    image = disk_data[1][0]
    expected = trained.uncertainty(image, "bald")
    pred = SlidingPredictor(trained.net, trained.config, trained.device, trained.amp_dtype)
    real_run = SlidingPredictor._run
    calls = []

    def flaky(self, x, sp, roi, mode, passes, stitch, batch):
        calls.append(batch)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_run(self, x, sp, roi, mode, passes, stitch, batch)

    monkeypatch.setattr(SlidingPredictor, "plan", lambda self, *a: [(torch.device("cpu"), 5), (torch.device("cpu"), 1)])
    monkeypatch.setattr(SlidingPredictor, "_run", flaky)
    stats = pred.run(trained._prepare(image), "mc", trained.config.uncertainty.passes)
    assert calls == [5, 1] and pred.attempts == [("cpu", 5), ("cpu", 1)]
    np.testing.assert_allclose(stats.output.numpy(), expected.prediction.output, atol=1e-5)

    def always(*_a):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(SlidingPredictor, "_run", always)
    with pytest.raises(torch.cuda.OutOfMemoryError):  # the last plan failing too is reported, not hidden
        pred.run(trained._prepare(image))


def test_window_batch_and_host_stitching_do_not_change_results(trained, disk_data):
    x = trained._prepare(disk_data[2][0])
    net = copy.deepcopy(trained.net).cpu()
    runs = []
    for batch in (1, 3, 7):
        cfg = trained.config.model_copy(deep=True)
        cfg.inference.sw_batch_size = batch
        runs.append(SlidingPredictor(net, cfg, torch.device("cpu")).run(x, "mc", 4))
    for other in runs[1:]:
        for a, b in zip((runs[0].output, runs[0].mean, runs[0].mean_entropy, runs[0].variance),
                        (other.output, other.mean, other.mean_entropy, other.variance), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_bf16_autocast_stays_close_to_float32(trained, disk_data):
    """The GPU path runs the backbone under bf16 autocast (the head and every statistic in float32). CPU
    autocast rounds to bf16 the same way, so its effect is measured here: bf16 keeps 8 bits of mantissa, so
    probabilities move by up to a few 1e-2 (0.022 on this model), labels almost never. The 1e-3 agreement
    holds for what this engine changes (window batch, stitching device: exact, tested above), not for
    bf16 itself; ``training.amp: false`` runs inference in float32."""
    net = copy.deepcopy(trained.net).cpu()
    x = trained._prepare(np.tile(disk_data[3][0], (1, 2, 2)))
    fp32 = SlidingPredictor(net, trained.config, torch.device("cpu")).run(x, "mc", 4)
    bf16 = SlidingPredictor(net, trained.config, torch.device("cpu"), torch.bfloat16).run(x, "mc", 4)
    assert float((bf16.output - fp32.output).abs().max()) <= 0.05
    assert float((bf16.mean - fp32.mean).abs().max()) <= 0.05
    assert float((bf16.output.argmax(0) == fp32.output.argmax(0)).float().mean()) >= 0.99
