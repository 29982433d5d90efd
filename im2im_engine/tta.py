"""Test-time augmentation of the output: the prediction averaged over the symmetries the model learnt.

Why: a network trained on flipped and rotated patches should give the same answer for a flipped input,
and where it does not, the difference is its error; averaging the outputs of the transformed inputs
(transformed back) cancels part of that error. CAREamics' documentation describes this as its default
for predictions (its 0.3 release, which our benchmark installs, has none). On our Noise2Void benchmark it
adds up to a quarter dB PSNR (``benchmarks/README.md`` #10) for ``len(symmetries)`` times the prediction
time.
``inference.tta`` turns it on (the denoise presets do).

Which symmetries: exactly those ``data.augmentation`` trained on, in the YX plane, so the model never sees
an input it was not trained for (CAREamics warns about this case): flips of Y and X, and quarter turns
when ``rot90`` is on and the patch is square in YX (as the patch sampler rotates) and Y and X have the same
stride (a turned window must still fit the network). Flips and quarter turns together are the 8
symmetries of a square; flips alone 4 (identity, flip X, flip Y, half turn); quarter turns alone 4. Z is
never flipped: 8 passes at most, in 3D too.

A symmetry is ``(k, flip)``: ``k`` quarter turns in the YX plane (``torch.rot90`` over the last two axes),
then X flipped when ``flip``; :func:`undo` applies the inverse to an output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import EngineConfig

Symmetry = tuple[int, bool]
IDENTITY: Symmetry = (0, False)


def symmetries(cfg: EngineConfig) -> list[Symmetry]:
    """The YX symmetries ``cfg`` trained on (see the module docstring), identity first."""
    from .networks import total_stride

    aug = cfg.data.augmentation
    patch = cfg.data.patch_size
    stride = total_stride(cfg)
    turns = aug.rot90 and patch[-1] == patch[-2] and stride[-1] == stride[-2]
    ks = [0, 1, 2, 3] if turns else ([0, 2] if aug.flips else [0])
    flips = [False, True] if aug.flips else [False]
    return [(k, f) for k in ks for f in flips]


def apply(x: torch.Tensor, sym: Symmetry) -> torch.Tensor:
    """``x`` (B, C, ..., Y, X) transformed by ``sym``."""
    k, flip = sym
    if k:
        x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, (-1,)) if flip else x


def undo(y: torch.Tensor, sym: Symmetry) -> torch.Tensor:
    """The inverse of :func:`apply` (an output of a transformed input, back in the input's frame)."""
    k, flip = sym
    if flip:
        y = torch.flip(y, (-1,))
    return torch.rot90(y, -k, dims=(-2, -1)) if k else y


def from_flips(axes: tuple[int, ...], spatial_dims: int) -> Symmetry | None:
    """The symmetry equal to flipping tensor ``axes`` (as :func:`im2im_engine.inference.flip_sets` gives
    them), or None when a flip of Z is among them (not a YX symmetry)."""
    y_ax, x_ax = spatial_dims, spatial_dims + 1  # tensor axes of Y and X in (B, C, *sp)
    if any(a not in (y_ax, x_ax) for a in axes):
        return None
    fy, fx = y_ax in axes, x_ax in axes
    # flip Y = half turn, then flip X; flip Y and X = half turn
    return (2 if fy else 0, fx != fy)


def average(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, syms: list[Symmetry],
            first: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over ``syms`` of ``undo(fn(apply(x, s)), s)``; ``first``: ``fn(x)`` when already computed."""
    total = None
    for s in syms:
        y = first if (s == IDENTITY and first is not None) else undo(fn(apply(x, s)), s)
        total = y.clone() if total is None else total + y
    assert total is not None
    return total / len(syms)
