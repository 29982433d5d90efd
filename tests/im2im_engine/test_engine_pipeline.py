"""The training input pipeline: the same patches as before, in the same order, whatever the threads do;
and the training loop reads the loss back to the host only when it is due.

``_old_batch`` is the patch sampler as it was before the plan/make split (frozen here): the batch stream
must stay a pure function of ``training.seed`` *and* the same stream as before, so a run trained before this
change is reproduced bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from im2im_engine import Engine, Sample
from im2im_engine.data import PatchSampler, prepare
from im2im_engine.pipeline import BatchStream, default_workers


def _old_batch(sampler: PatchSampler, batch_size: int):
    """The sampler before the split (copied from im2im_engine/data.py at 13d87ba)."""
    cfg, rng, patch = sampler.cfg, sampler.rng, sampler.patch

    def centre(s):
        sp = s.weight.shape
        if s.pools and rng.random() < cfg.data.foreground_fraction:
            pool = s.pools[int(rng.integers(len(s.pools)))]
            return tuple(int(i) for i in np.unravel_index(pool[int(rng.integers(len(pool)))], sp))
        return tuple(int(rng.integers(n)) for n in sp)

    def crop(s):
        c = centre(s)
        sp = s.weight.shape
        starts = [min(max(a - p // 2, 0), n - p) for a, p, n in zip(c, patch, sp, strict=True)]
        sl = tuple(slice(a, a + p) for a, p in zip(starts, patch, strict=True))
        return s.image[(slice(None), *sl)], s.target[(..., *sl)], s.weight[sl]

    def augment(x, y, w):
        aug = cfg.data.augmentation
        d = w.ndim
        if aug.flips:
            for ax in range(d):
                if rng.random() < 0.5:
                    x, y, w = np.flip(x, ax - d), np.flip(y, ax - d), np.flip(w, ax - d)
        if aug.rot90 and patch[-1] == patch[-2]:
            k = int(rng.integers(4))
            if k:
                x, y, w = (np.rot90(a, k, axes=(-2, -1)) for a in (x, y, w))
        if cfg.task.kind != "regression" and (aug.intensity_scale or aug.intensity_shift):
            scale = 1.0 + rng.uniform(-aug.intensity_scale, aug.intensity_scale)
            shift = rng.uniform(-aug.intensity_shift, aug.intensity_shift)
            x = x * np.float32(scale) + np.float32(shift)
        return x, y, w

    xs, ys, ws = [], [], []
    for _ in range(batch_size):
        s = sampler.samples[int(rng.integers(len(sampler.samples)))]
        x, y, w = augment(*crop(s))
        xs.append(np.ascontiguousarray(x, np.float32))
        ys.append(np.ascontiguousarray(y))
        ws.append(np.ascontiguousarray(w, np.float32))
    return np.stack(xs), np.stack(ys), np.stack(ws)


def _sampler(cfg, data, seed=0, weight=False):
    rng = np.random.default_rng(seed)
    samples = []
    for i, (im, gt) in enumerate(data):
        target = gt if cfg.task.kind != "regression" else (gt > 0).astype(np.float32)[None]
        if cfg.task.kind == "semantic":
            target = (gt > 0).astype(np.int32)
        w = None
        if weight:  # a few "painted" pixels: the corrected-pixel pool is used too
            w = np.full(gt.shape, 0.3, np.float32)
            w[..., :5] = 1.0
        samples.append(prepare(Sample(im, target, w, f"s{i}"), cfg, rng))
    return PatchSampler(samples, cfg, rng)


CASES = {
    "semantic_2d": dict(kind="semantic"),
    "instance_2d": dict(kind="instance"),
    "regression_2d": dict(kind="regression", uncertainty={"method": "variance"}),
    "semantic_3d": dict(kind="semantic", spatial_dims=3),
    "non_square_2d": dict(kind="semantic", data={"patch_size": [16, 32]}),
    "no_augmentation": dict(kind="semantic", data={"augmentation": {"flips": False, "rot90": False,
                                                                     "intensity_scale": 0.0,
                                                                     "intensity_shift": 0.0}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planned_batches_are_the_old_stream(case, tiny_cfg, disk_data, make_disks):
    cfg = tiny_cfg(**CASES[case])
    data = [make_disks(s, size=32, three_d=True) for s in range(2)] if cfg.data.spatial_dims == 3 else disk_data
    new, old = _sampler(cfg, data, weight=True), _sampler(cfg, data, weight=True)
    for batch in (4, 1, 7):
        got, want = new.batch(batch), _old_batch(old, batch)
        for g, e in zip(got, want, strict=True):
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_array_equal(g, e)
    assert new.rng.bit_generator.state == old.rng.bit_generator.state  # the same draws, no more, no fewer


def test_threads_hand_out_the_planned_order(tiny_cfg, disk_data):
    cfg = tiny_cfg()
    ref = _sampler(cfg, disk_data)
    want = [ref.batch(5) for _ in range(12)]
    seen_threads = set()
    sampler = _sampler(cfg, disk_data)
    make = sampler.make

    def slow_make(plans, out=None):  # finish out of order: later batches overtake earlier ones
        seen_threads.add(threading.current_thread().name)
        if len(seen_threads) % 2:
            threading.Event().wait(0.01)
        return make(plans, out)

    sampler.make = slow_make
    with BatchStream(sampler, 5, workers=3, depth=5) as stream:
        got = [stream.next() for _ in range(12)]
    assert any(n.startswith("im2im-patches") for n in seen_threads)
    for g, e in zip(got, want, strict=True):
        for gt, et in zip(g, e, strict=True):
            assert isinstance(gt, torch.Tensor)
            np.testing.assert_array_equal(gt.numpy(), et)


def test_a_sampler_with_only_batch_runs_in_order(tiny_cfg, disk_data):
    cfg = tiny_cfg()
    ref = _sampler(cfg, disk_data)
    want = [ref.batch(3) for _ in range(6)]

    class Plain:  # no plan/make: its generator is drawn inside batch()
        def __init__(self, inner):
            self.inner = inner

        def batch(self, n):
            return self.inner.batch(n)

    with BatchStream(Plain(_sampler(cfg, disk_data)), 3, workers=4) as stream:
        got = [stream.next() for _ in range(6)]
    for g, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(g[0].numpy(), e[0])


def test_transform_runs_in_stream_order(tiny_cfg, disk_data):
    """A masking step with its own generator (Noise2Void) plugs in as ``transform``."""
    cfg = tiny_cfg()
    calls = []

    def transform(x, y, w):
        calls.append(float(x.sum()))
        return x * 0, y, w  # a new x; y and w are passed through untouched

    ref = _sampler(cfg, disk_data)
    want = [ref.batch(2) for _ in range(5)]
    with BatchStream(_sampler(cfg, disk_data), 2, workers=2, transform=transform) as stream:
        got = [stream.next() for _ in range(5)]
    assert calls == pytest.approx([float(e[0].sum()) for e in want])
    assert all(float(g[0].abs().sum()) == 0 for g in got)
    np.testing.assert_array_equal(got[4][2].numpy(), want[4][2])


def test_close_stops_the_threads(tiny_cfg, disk_data):
    stream = BatchStream(_sampler(tiny_cfg(), disk_data), 2, workers=2)
    stream.next()
    stream.close()
    assert stream._pool is None
    assert not [t for t in threading.enumerate() if t.name.startswith("im2im-patches")]


def test_default_workers():
    assert default_workers(torch.device("cpu")) == 0
    assert 1 <= default_workers(torch.device("cuda")) <= 4  # a descriptor only: no GPU needed


def _semantic(data):
    return [Sample(im, (gt > 0).astype(np.int32), None, f"s{i}") for i, (im, gt) in enumerate(data)]


def test_background_threads_train_identically(tiny_cfg, disk_data):
    samples = _semantic(disk_data[:2])
    runs = []
    for workers in (0, 2):
        eng = Engine.from_config(tiny_cfg(training={"steps": 5, "loader_workers": workers}), device="cpu")
        runs.append([h["loss"] for h in eng.train(samples).history])
    assert runs[0] == runs[1]


def test_loss_is_read_back_only_when_due(tiny_cfg, disk_data, monkeypatch):
    """With an interval that never elapses, the host reads the losses only before each validation and at the
    end: one transfer each, whatever the number of steps; history and progress are those of a per-step run."""
    from im2im_engine import train as train_mod

    samples = _semantic(disk_data)
    cfg = tiny_cfg(training={"steps": 12, "val_every": 5})
    per_step_events: list[dict] = []
    per_step = Engine.from_config(cfg, device="cpu").train(samples[:2], val=samples[3:],
                                                           progress=per_step_events.append, sync_interval_s=0)

    reads: list[int] = []
    real = train_mod._host
    monkeypatch.setattr(train_mod, "_host", lambda values: reads.append(len(values)) or real(values))
    events: list[dict] = []
    deferred = Engine.from_config(cfg, device="cpu").train(samples[:2], val=samples[3:], progress=events.append,
                                                           sync_interval_s=1e9)
    assert reads == [5, 5, 2]  # steps 1-5 before validation 5, 6-10, then 11-12 (validated at the end)
    assert [h["loss"] for h in deferred.history] == [h["loss"] for h in per_step.history]
    assert [e["step"] for e in events] == list(range(1, 13))
    assert [e["loss"] for e in events] == [e["loss"] for e in per_step_events]
    assert [e["metric"] is not None for e in events] == [s in (5, 10, 12) for s in range(1, 13)]


def test_non_finite_loss_names_its_step(tiny_cfg, disk_data):
    im, gt = disk_data[0]
    bad = np.full_like(im, np.nan)  # every patch is NaN from step 1
    for interval in (0, 1e9):
        eng = Engine.from_config(tiny_cfg(data={"normalization": "none"}, training={"steps": 4}), device="cpu")
        with pytest.raises(FloatingPointError, match="at step 1;"):
            eng.train([Sample(bad, (gt > 0).astype(np.int32), None, "nan")], sync_interval_s=interval)


def test_denoise_masking_with_background_threads_trains_identically(tiny_cfg, disk_data):
    """N2V masking draws from its own generator; as the stream's transform it runs in the training thread in
    stream order, so background threads change nothing (the losses of main's synchronous loop, checked
    side by side with main once; here: threads against none)."""
    samples = [Sample(im, None, None, f"d{i}") for i, (im, _) in enumerate(disk_data[:2])]
    runs = []
    for workers in (0, 2):
        eng = Engine.from_config(tiny_cfg("denoise", training={"steps": 4, "loader_workers": workers}), device="cpu")
        runs.append([h["loss"] for h in eng.train(samples).history])
    assert runs[0] == runs[1]
