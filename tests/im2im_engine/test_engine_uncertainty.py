"""The dropout head's BALD / variance against Monte Carlo dropout, the thing it stands for.

``head_moments`` integrates a Gaussian approximation of the head's dropout distribution, and samples
``uncertainty.samples`` masks where the two likeliest classes are within ``MARGIN_SIGMAS`` dropout standard
deviations (and everywhere from 4 classes on, where the quadrature grid gets dearer and cruder). The stated bound, per pixel, against
textbook MC dropout with 3000 masks per pixel (its own noise included): mean probability within 0.05, BALD
(divided by log K, as the maps are) within BALD_BOUND, variance within 0.02 — for a trained head, and for the
same head with its weights x3 and x6 (larger logit spread, where the Gaussian approximation alone is off by
several times the bound), with 2, 3 and 10 classes.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from im2im_engine import Engine, Sample
from im2im_engine.inference import (
    MARGIN_SIGMAS,
    check_against_sampling,
    head_moments,
    quadrature_nodes,
    uses_quadrature,
)

MEAN_BOUND, BALD_BOUND, VAR_BOUND = 0.05, 0.06, 0.02


@pytest.fixture(scope="module")
def trained(disk_data):
    from im2im_engine import load_config

    cfg = load_config({"data": {"patch_size": [32, 32]}, "inference": {"roi_size": [32, 32]},
                       "model": {"params": {"channels": [8, 16], "strides": [2], "num_res_units": 1},
                                 "head_features": 8, "dropout": 0.2},
                       "training": {"steps": 25, "batch_size": 4, "lr": 0.01, "warmup_steps": 0}})
    eng = Engine.from_config(cfg, device="cpu")
    eng.train([Sample(im, (gt > 0).astype(np.int32)) for im, gt in disk_data[:3]])
    return eng


@pytest.fixture(scope="module")
def features(trained, disk_data):
    with torch.no_grad():
        return trained.net.features(torch.from_numpy(trained._prepare(disk_data[3][0]))[None]).float()


def _head(net, classes: int, scale: float):
    """The trained 2-class head, more classes made from its foreground row (perturbed), weights scaled."""
    head = copy.deepcopy(net)
    w0 = net.out.weight.detach().reshape(2, -1)
    b0 = net.out.bias.detach()
    if classes > 2:
        gen = torch.Generator().manual_seed(classes)
        extra = w0[1:].repeat(classes - 2, 1) * 0.7 + 0.3 * w0.std() * torch.randn((classes - 2, w0.shape[1]),
                                                                                     generator=gen)
        w0, b0 = torch.cat([w0, extra]), torch.cat([b0, b0[1:].repeat(classes - 2)])
    conv = torch.nn.Conv2d(w0.shape[1], classes, 1)
    conv.weight.data = (w0 * scale).reshape(classes, -1, 1, 1).clone()
    conv.bias.data = (b0 * scale).clone()
    head.out = conv
    return head


CASES = [(2, 1.0), (2, 3.0), (2, 6.0), (3, 1.0), (3, 3.0), (3, 6.0), (10, 1.0)]


@pytest.mark.parametrize(("classes", "scale"), CASES)
def test_within_the_bound_of_mc_dropout(trained, features, classes, scale):
    net = _head(trained.net, classes, scale)
    samples = trained.config.uncertainty.samples
    err = check_against_sampling(net, features, trained.config.uncertainty.passes, samples, reference=3000,
                                 generator=torch.Generator().manual_seed(classes * 10 + int(scale)))
    assert err["mean"] <= MEAN_BOUND and err["bald"] <= BALD_BOUND and err["variance"] <= VAR_BOUND, err
    assert err["bald_image"] == pytest.approx(err["bald_image_reference"], rel=0.25, abs=2e-3), err


@pytest.mark.parametrize(("classes", "scale"), [(2, 6.0), (3, 6.0)])
def test_the_gaussian_approximation_alone_is_outside_the_bound(trained, features, classes, scale):
    """What the fallback is for: without it (``margin_sigmas=0``) a head with larger weights is off by more."""
    net = _head(trained.net, classes, scale)
    err = check_against_sampling(net, features, trained.config.uncertainty.passes, 256, reference=3000,
                                 margin_sigmas=0.0, generator=torch.Generator().manual_seed(7))
    assert err["bald"] > BALD_BOUND, err


def test_many_classes_are_sampled_everywhere(trained, features):
    """The grid has per_axis ** (classes - 1) nodes: 512 at 10 classes and 8 passes, 2 per axis (exact for
    cubics only). From 4 classes on (at 8 passes) every pixel is sampled instead."""
    assert quadrature_nodes(8, 2) == 8 and quadrature_nodes(8, 3) == 9 and quadrature_nodes(8, 10) == 512
    assert uses_quadrature(8, 2) and uses_quadrature(8, 3) and not uses_quadrature(8, 4)
    assert uses_quadrature(27, 4) and uses_quadrature(64, 5) and not uses_quadrature(64, 6)
    net = _head(trained.net, 10, 1.0)
    got = head_moments(net, features, 8, True, 256)
    everywhere = head_moments(net, features, 8, True, 256, margin_sigmas=float("inf"))
    for a, b in zip(got, everywhere, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_sampled_pixels_are_deterministic(trained, features):
    net = _head(trained.net, 2, 6.0)
    torch.manual_seed(1)
    first = head_moments(net, features, 8, True, 256)
    torch.manual_seed(2)
    second = head_moments(net, features, 8, True, 256)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert MARGIN_SIGMAS == 4.0  # the value the bound was measured with (docs quote it)
