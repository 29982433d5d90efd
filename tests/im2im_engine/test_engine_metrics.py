import numpy as np
import pytest

from im2im_engine.metrics import ap50, dice, iou, match_instances, psnr, ssim


def test_dice_iou_known():
    a = np.zeros((4, 4), int)
    b = np.zeros((4, 4), int)
    a[:2] = 1
    b[1:3] = 2  # label values differ: foreground compared
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(1 / 3)
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0


def test_dice_mask_ignores_pixels():
    a = np.array([1, 1, 0, 0])
    b = np.array([1, 0, 0, 1])
    assert dice(a, b, mask=np.array([1, 0, 1, 0])) == 1.0


def test_ap50():
    truth = np.zeros((20, 20), int)
    truth[2:8, 2:8] = 1
    truth[12:18, 12:18] = 2
    pred = np.zeros_like(truth)
    pred[2:8, 2:8] = 7  # perfect
    pred[12:14, 12:14] = 3  # too small: FP and the truth is FN
    pred[0, 19] = 4  # spurious: FP
    assert match_instances(pred, truth) == (1, 2, 1)
    assert ap50(pred, truth) == pytest.approx(1 / 4)
    assert ap50(truth, truth) == 1.0
    assert ap50(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    assert ap50(np.zeros_like(truth), truth) == 0.0


def test_psnr_ssim():
    rng = np.random.default_rng(0)
    x = rng.random((32, 32))
    assert psnr(x, x) == float("inf")
    assert psnr(x + 0.1, x, data_range=1.0) == pytest.approx(20.0)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x + rng.normal(0, 0.3, x.shape), x) < 0.9
    assert ssim(x[None], x[None]) == pytest.approx(1.0)  # (C, Y, X)


def test_psnr_default_range_is_the_truths():
    truth = np.linspace(10.0, 14.0, 64).reshape(8, 8)  # range 4, not the dtype's
    pred = truth + 0.4
    assert psnr(pred, truth) == pytest.approx(10 * np.log10(16 / 0.16))
    assert psnr(np.zeros(4), np.zeros(4)) == float("inf")  # flat truth: range 1, identical: inf
