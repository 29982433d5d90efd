import numpy as np
import pytest

from im2im_engine import Engine, Sample


def semantic_samples(data):
    return [Sample(im, (gt > 0).astype(np.int32), None, f"s{i}") for i, (im, gt) in enumerate(data)]


def test_training_learns_bright_disks(tiny_cfg, disk_data):
    samples = semantic_samples(disk_data)
    eng = Engine.from_config(tiny_cfg(training={"steps": 30}))
    before = eng.evaluate(samples[3:])["dice"]
    events = []
    res = eng.train(samples[:3], val=samples[3:], progress=events.append)
    assert res.steps == 30 and not res.cancelled
    losses = [h["loss"] for h in res.history]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert res.val_metrics["dice"] > 0.8 > before
    assert res.best_step in (10, 20, 30)
    assert [e["step"] for e in events] == list(range(1, 31))
    assert {"step", "total", "loss", "metric", "throughput", "eta_s"} <= set(events[0])
    assert events[9]["metric"] is not None and events[0]["metric"] is None


def test_seed_reproducible(tiny_cfg, disk_data):
    samples = semantic_samples(disk_data[:2])
    runs = []
    for _ in range(2):
        eng = Engine.from_config(tiny_cfg(training={"steps": 6}))
        runs.append([h["loss"] for h in eng.train(samples).history])
    assert runs[0] == runs[1]
    other = Engine.from_config(tiny_cfg(training={"steps": 6, "seed": 1}))
    assert [h["loss"] for h in other.train(samples).history] != runs[0]


def test_should_stop_cancels_within_one_step(tiny_cfg, disk_data, tmp_path):
    samples = semantic_samples(disk_data[:2])
    eng = Engine.from_config(tiny_cfg(training={"steps": 100}))
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    ckpt = tmp_path / "m" / "model.pt"
    res = eng.train(samples, should_stop=stop, checkpoint_path=ckpt)
    assert res.cancelled and res.steps == 3
    assert ckpt.exists() and (ckpt.parent / "config.yaml").exists()
    Engine.load(ckpt)


def test_early_stopping(tiny_cfg, disk_data):
    samples = semantic_samples(disk_data)
    eng = Engine.from_config(tiny_cfg(training={"steps": 200, "val_every": 2, "early_stopping_patience": 1,
                                                "lr": 1e-7}))
    res = eng.train(samples[:2], val=samples[2:3])
    assert res.stopped_early and res.steps < 200


@pytest.mark.slow
def test_instance_training_learns(tiny_cfg, disk_data):
    samples = [Sample(im, gt, None, f"i{i}") for i, (im, gt) in enumerate(disk_data)]
    eng = Engine.from_config(tiny_cfg("instance", training={"steps": 60, "val_every": 20}))
    before = eng.evaluate(samples[3:])
    res = eng.train(samples[:3], val=samples[3:])
    assert res.val_metrics["ap50"] >= max(0.6, before["ap50"] + 0.3)
    labels = eng.predict(samples[3].image).labels
    assert labels.dtype == np.int32 and labels.max() >= 2


@pytest.mark.slow
def test_regression_learns(tiny_cfg, disk_data):
    from scipy import ndimage as ndi

    samples = [Sample(im, ndi.gaussian_filter((gt > 0).astype(np.float32), 1.0)[None], None, f"r{i}")
               for i, (im, gt) in enumerate(disk_data)]
    eng = Engine.from_config(tiny_cfg("regression", uncertainty={"method": "variance"}, training={"steps": 30}))
    before = eng.evaluate(samples[3:])["psnr"]
    res = eng.train(samples[:3], val=samples[3:])
    assert res.val_metrics["psnr"] > before + 3
    pred = eng.predict(samples[3].image)
    assert pred.labels is None and pred.output.shape == (1, 64, 64)


def test_weights_zero_means_ignored(tiny_cfg, disk_data):
    """With weight 0 on all foreground, the net must not learn the disks (the weight map is honoured)."""
    im, gt = disk_data[0]
    w = (gt == 0).astype(np.float32)
    eng = Engine.from_config(tiny_cfg(training={"steps": 20}))
    eng.train([Sample(im, (gt > 0).astype(np.int32), w, "w")])
    assert (eng.predict(im).labels[gt > 0] == 1).mean() < 0.5


@pytest.mark.slow
def test_fine_tuning_moves_toward_corrections(tiny_cfg, tmp_path, make_disks):
    """Pseudo labels are over-segmented (dilated); fine-tuning from that checkpoint on corrections fixes it."""
    from scipy import ndimage as ndi

    data = [make_disks(s) for s in range(10, 13)]
    pseudo = [Sample(im, ndi.binary_dilation(gt > 0, iterations=3).astype(np.int32), None, "p") for im, gt in data]
    eng = Engine.from_config(tiny_cfg(training={"steps": 30}))
    eng.train(pseudo)
    eng.save(tmp_path / "v1" / "model.pt")
    truth = [Sample(im, (gt > 0).astype(np.int32), None, "c") for im, gt in data]
    before = eng.evaluate(truth)["dice"]
    eng2 = Engine.from_config(tiny_cfg(training={"steps": 30}), checkpoint=tmp_path / "v1" / "model.pt")
    assert eng2.evaluate(truth)["dice"] == pytest.approx(before)
    eng2.train(truth)
    assert eng2.evaluate(truth)["dice"] > before + 0.05


@pytest.mark.slow
def test_3d_semantic_trains(tiny_cfg, make_disks):
    data = [make_disks(s, size=32, three_d=True) for s in range(2)]
    samples = [Sample(im, (gt > 0).astype(np.int32), None, f"z{i}") for i, (im, gt) in enumerate(data)]
    eng = Engine.from_config(tiny_cfg(spatial_dims=3, training={"steps": 15, "batch_size": 2}))
    before = eng.evaluate(samples[1:])["dice"]
    res = eng.train(samples[:1], val=samples[1:])
    assert res.val_metrics["dice"] > max(before, 0.5)
    assert eng.predict(samples[1].image).labels.shape == (16, 32, 32)


def test_epochs_replace_steps_and_explicit_steps_win(tiny_cfg, disk_data):
    samples = semantic_samples(disk_data[:3])
    cfg = tiny_cfg(training={"steps": 50, "epochs": 2, "patches_per_image": 2, "batch_size": 2})
    eng = Engine.from_config(cfg)
    assert eng.train(samples).steps == 6  # ceil(2 epochs * 3 images * 2 patches / batch 2)
    assert eng.train(samples, steps=3).steps == 3


def test_epochs_must_be_positive(tiny_cfg):
    from im2im_engine import ConfigError

    with pytest.raises(ConfigError, match=r"training\.epochs"):
        tiny_cfg(training={"epochs": 0})
