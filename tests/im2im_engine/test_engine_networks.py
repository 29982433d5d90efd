import pytest
import torch

from im2im_engine import load_config
from im2im_engine.networks import build_network

NAMES = ["UNet", "BasicUNet", "AttentionUnet", "SegResNet", "DynUNet", "CAREUNet"]
SMALL = {
    "UNet": {"channels": [8, 16], "strides": [2]},
    "BasicUNet": {"features": [8, 8, 8, 8, 8, 8]},
    "AttentionUnet": {"channels": [8, 16], "strides": [2]},
    "SegResNet": {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1]},
    "DynUNet": {"kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2], "filters": [8, 8, 16]},
    "CAREUNet": {"depth": 2, "num_channels_init": 8},
}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_shapes(name, dims):
    size = [32] * dims
    cfg = load_config({
        "data": {"spatial_dims": dims, "in_channels": 2, "patch_size": size},
        "inference": {"roi_size": size},
        "model": {"name": name, "params": SMALL[name], "head_features": 8},
        "task": {"kind": "semantic", "num_classes": 3},
    })
    net = build_network(cfg).eval()
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        f = net.features(x)
        y = net(x)
        y_mc = net.head(f, mc=True)
    assert f.shape == (1, 8, *size)
    assert y.shape == (1, 3, *size)
    assert y_mc.shape == y.shape
    assert not torch.allclose(y, y_mc)  # dropout active in MC head even in eval mode


def test_head_is_deterministic_without_mc():
    cfg = load_config({"data": {"patch_size": [16, 16]}, "inference": {"roi_size": [16, 16]},
                       "model": {"params": SMALL["UNet"]}})
    net = build_network(cfg).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_task_output_channels():
    for task, ch in (({"kind": "instance"}, 3), ({"kind": "regression", "out_channels": 2}, 2)):
        cfg = load_config({"task": task, "model": {"params": SMALL["UNet"]}, "uncertainty": {"method": "tta"}})
        assert build_network(cfg).out.out_channels == ch
