"""Network options for denoising: N2V2's changes to MONAI's UNet, and per-channel denoising.

Why these changes (Höck et al. 2022, "N2V2"): a blind-spot network trained on masked pixels tends to leave
checkerboard artefacts, which come from aliasing in the down-sampling and from the full-detail path the
top skip connection offers. N2V2 blurs before sub-sampling (BlurPool) and drops the top skip. MONAI's UNet
down-samples with strided convolutions, so ``model.blur_pool`` runs each down layer at stride 1 and then
blurs with a binomial [1, 2, 1] kernel and sub-samples (Zhang 2019, "ConvBlurPool"); ``model.top_skip:
false`` removes the outermost skip connection. Both are options of the ordinary network, for any task.

``task.n2v.independent_channels`` folds channels into the batch: every channel is denoised by the same
network from that channel alone (CAREamics trains grouped per-channel networks instead; one shared
network sees every channel's pixels, which suits the few images a project has).

``CAREUNet`` is the UNet of CSBDeep / CAREamics, which N2V was designed and tuned with: per level two 3x3
convolutions (each with batch norm and ReLU), max pooling, bilinear up-sampling and concatenated skips, and
a bottleneck of twice the channels. MONAI's ``UNet`` with ``num_res_units: 0`` has *one* convolution per
level (strided for the way down, transposed for the way up); in our training loop it denoised the
benchmark's demo image 1.9 dB worse than CAREamics at the same budget (60 steps x 8 patches of 64², one
seed each), ``CAREUNet`` as well as CAREamics (median of 3 seeds 29.85 against 29.81 dB;
``benchmarks/denoise.py``). Its N2V2 options follow CAREamics too: ``blur_pool`` is max pooling at stride
1, a binomial blur and sub-sampling (MaxBlurPool); ``top_skip: false`` drops the full-resolution skip.
``use_batch_norm`` is CAREamics' default, but the denoise presets turn it off: at evaluation the running
statistics mis-scaled whole predictions (on skimage's cell an affine fit of one output to the truth gained
6 dB), and at 300 steps x 16 patches, without it, cell went from 32.8 to 35.8 dB (N2V) and from 30.3 to
36.8 dB (N2V2), the demo image from 33.6 to 32.0 dB and from 32.8 to 31.6 dB (single seeds, see
benchmarks/README.md #10).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import UNet
from torch import nn

from .config import EngineConfig
from .networks import Im2ImNet


class BlurPool(nn.Module):
    """Anti-aliased down-sampling: a per-channel binomial [1, 2, 1] blur, then sub-sampling by ``stride``.

    Axes with stride 1 are neither blurred nor sub-sampled (anisotropic 3D strides such as (1, 2, 2)).
    The kernel is a fixed, non-persistent buffer: checkpoints hold the same tensors as without it.
    """

    def __init__(self, spatial_dims: int, channels: int, stride: int | Sequence[int]):
        super().__init__()
        strides = [int(stride)] * spatial_dims if isinstance(stride, int) else [int(s) for s in stride]
        self.stride = tuple(strides)
        self.channels = channels
        kernel = torch.ones([1] * spatial_dims)
        for ax, s in enumerate(strides):
            k1 = torch.tensor([1.0, 2.0, 1.0]) if s > 1 else torch.ones(1)
            shape = [1] * spatial_dims
            shape[ax] = len(k1)
            kernel = kernel * k1.reshape(shape)
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel[None, None].repeat(channels, 1, *([1] * spatial_dims)),
                             persistent=False)
        self.pad = [p for s in reversed(strides) for p in ((1, 1) if s > 1 else (0, 0))]
        self.conv = F.conv2d if spatial_dims == 2 else F.conv3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, mode="replicate")
        return self.conv(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)


class N2V2UNet(UNet):
    """MONAI's UNet with ``blur_pool`` (stride-1 down layers + :class:`BlurPool`) and/or no top skip."""

    def __init__(self, *args, blur_pool: bool = True, top_skip: bool = False, **kwargs):
        object.__setattr__(self, "_blur_pool", blur_pool)  # read by _get_down_layer during super().__init__
        super().__init__(*args, **kwargs)
        if not top_skip:
            self._drop_top_skip()

    def _get_down_layer(self, in_channels: int, out_channels: int, strides, is_top: bool) -> nn.Module:
        per_axis = list(strides) if isinstance(strides, Sequence) else [strides]
        if not self._blur_pool or all(int(s) == 1 for s in per_axis):
            return super()._get_down_layer(in_channels, out_channels, strides, is_top)
        layer = super()._get_down_layer(in_channels, out_channels, 1, is_top)
        return nn.Sequential(layer, BlurPool(self.dimensions, out_channels, strides))

    def _drop_top_skip(self) -> None:
        """``Sequential(down, SkipConnection(sub), up)`` -> ``Sequential(down, sub, up')`` at the top level."""
        down, skip, _ = self.model
        assert isinstance(skip, SkipConnection)
        sub_out = self.channels[0] if len(self.channels) > 2 else self.channels[1]
        up = self._get_up_layer(sub_out, self.out_channels, self.strides[0], True)
        self.model = nn.Sequential(down, skip.submodule, up)


def _per_axis(value: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    return tuple([int(value)] * spatial_dims if isinstance(value, int) else [int(v) for v in value])


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by batch norm (``norm``) and ReLU; ``mid`` channels in between."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, mid: int | None = None,
                 norm: bool = True):
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        bn = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        mid = mid or out_channels
        layers: list[nn.Module] = []
        for cin, cout in ((in_channels, mid), (mid, out_channels)):
            layers += [conv(cin, cout, 3, padding=1), bn(cout) if norm else nn.Identity(), nn.ReLU()]
        super().__init__(*layers)


class MaxBlurPool(nn.Module):
    """N2V2's down-sampling: max pooling over ``pool`` at stride 1, then :class:`BlurPool` by ``pool``."""

    def __init__(self, spatial_dims: int, channels: int, pool: Sequence[int]):
        super().__init__()
        mp = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        self.max = mp(kernel_size=tuple(pool), stride=1)
        self.blur = BlurPool(spatial_dims, channels, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.max(x))


class CAREUNet(nn.Module):
    """CSBDeep / CAREamics' UNet (see the module docstring), 2D or 3D, ending in ``out_channels`` features.

    ``depth`` down-samplings by ``pool`` (an int or one factor per axis, e.g. ``[1, 2, 2]`` for thin stacks);
    level ``n`` has ``num_channels_init * 2**n`` channels, the bottleneck twice the deepest level's inside.
    The last block's ReLU output is the engine's feature map (the head adds only the 1x1 convolution).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, depth: int = 2,
                 num_channels_init: int = 32, use_batch_norm: bool = True, pool: int | Sequence[int] = 2,
                 blur_pool: bool = False, top_skip: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (got {depth})")
        d = spatial_dims
        self.pool = _per_axis(pool, d)
        self.top_skip = top_skip
        self.mode = "bilinear" if d == 2 else "trilinear"
        widths = [num_channels_init * 2 ** n for n in range(depth)]
        mp = nn.MaxPool2d if d == 2 else nn.MaxPool3d
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(ConvBlock(d, cin, w, norm=use_batch_norm))
            self.pools.append(MaxBlurPool(d, w, self.pool) if blur_pool else mp(kernel_size=self.pool))
            cin = w
        self.bottleneck = ConvBlock(d, cin, cin, mid=2 * cin, norm=use_batch_norm)
        self.up = nn.ModuleList()
        for n, w in enumerate(reversed(widths)):
            last = n == depth - 1
            skip = w if (top_skip or not last) else 0
            out = out_channels if last else w // 2
            self.up.append(ConvBlock(d, cin + skip, out, mid=w if last else 2 * out, norm=use_batch_norm))
            cin = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block, pool in zip(self.down, self.pools, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for n, block in enumerate(self.up):
            x = F.interpolate(x, scale_factor=[float(p) for p in self.pool], mode=self.mode)
            if self.top_skip or n < len(self.up) - 1:
                x = torch.cat([x, skips[-1 - n]], 1)
            x = block(x)
        return x


class ChannelFoldNet(Im2ImNet):
    """Denoises every channel on its own with one network: (B, C, *sp) -> (B*C, 1, *sp) -> (B, C, *sp).

    ``features`` returns the folded (B*C, F, *sp) features (the embedding is their mean over channels too);
    ``head`` folds the output back. MC-dropout statistics are not defined on folded features, which is why
    denoising uses TTA for its uncertainty (``config._denoise_consistent``).
    """

    def __init__(self, backbone: nn.Module, spatial_dims: int, head_features: int, channels: int, dropout: float):
        super().__init__(backbone, spatial_dims, head_features, 1, dropout)
        self.channels = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return super().features(x.reshape(-1, 1, *x.shape[2:]))

    def head(self, f: torch.Tensor, mc: bool = False) -> torch.Tensor:
        y = super().head(f, mc)
        return y.reshape(-1, self.channels, *y.shape[2:])


def folds_channels(cfg: EngineConfig) -> bool:
    """Whether the network runs per channel (denoise with independent channels and more than one)."""
    return cfg.task.kind == "denoise" and cfg.task.n2v.independent_channels and cfg.data.in_channels > 1


def backbone_class(cfg: EngineConfig) -> type[nn.Module]:
    """The class to build: :class:`CAREUNet`, UNet with N2V2's options when they are set, else the MONAI network."""
    from monai.networks import nets

    m = cfg.model
    if m.name == "CAREUNet":
        def build_care(**kwargs) -> nn.Module:
            return CAREUNet(**kwargs, blur_pool=m.blur_pool, top_skip=m.top_skip)

        return build_care  # type: ignore[return-value]
    if m.blur_pool or not m.top_skip:
        def build(**kwargs) -> nn.Module:
            return N2V2UNet(**kwargs, blur_pool=m.blur_pool, top_skip=m.top_skip)

        return build  # type: ignore[return-value]
    return getattr(nets, m.name)


def wrap(backbone: nn.Module, cfg: EngineConfig) -> Im2ImNet:
    """The engine network around ``backbone``: per-channel when :func:`folds_channels`, else the usual one."""
    m = cfg.model
    d = cfg.data.spatial_dims
    if folds_channels(cfg):
        return ChannelFoldNet(backbone, d, m.head_features, cfg.data.in_channels, m.dropout)
    return Im2ImNet(backbone, d, m.head_features, cfg.task.output_channels, m.dropout)
