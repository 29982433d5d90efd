"""Checkpoints: atomic writes, safe loading, and readable mismatch errors.

Why ``torch.load(..., weights_only=True)`` only: a checkpoint is a pickle, and an ordinary pickle can run
arbitrary code when loaded. Model files travel between people and machines, so only tensors and plain
containers are accepted; anything else is refused with :class:`CheckpointError`. Writes go to a temp file
in the same folder and are renamed into place, so a crash or SIGTERM never leaves a half-written model.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write_bytes
from .config import ConfigError

__all__ = ["FORMAT", "CheckpointError", "atomic_write_bytes", "load_checkpoint", "save_checkpoint"]

FORMAT = "im2im-engine/1"


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not matching the config. Names the file."""


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], config: dict,
                    meta: dict | None = None) -> Path:
    """Save weights + resolved config (a plain dict) + metadata atomically."""
    payload = {
        "format": FORMAT,
        "config": config,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "meta": meta or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint payload safely (``weights_only=True``); raise :class:`CheckpointError` on problems.

    Also accepts a bare state dict (e.g. exported elsewhere): it is wrapped as ``{"state_dict": ...}``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" not in str(exc).lower():  # garbage, not a hostile pickle
            raise CheckpointError(
                f"{path}: not a readable checkpoint (truncated, corrupt or another format: {first})"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects that could run code; only weights "
            "are accepted (loaded with torch.load(weights_only=True); do not load it otherwise unless you trust "
            "where it came from)"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint (top level is {type(payload).__name__})")
    if "state_dict" not in payload:
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            return {"state_dict": payload, "config": None, "meta": {}}
        raise CheckpointError(f"{path}: not an im2im checkpoint (no 'state_dict')")
    return payload


def check_compatible(path: str | os.PathLike, model_state: dict[str, torch.Tensor],
                     ckpt_state: dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` naming the file and the first mismatching key and shapes."""
    missing = [k for k in model_state if k not in ckpt_state]
    unexpected = [k for k in ckpt_state if k not in model_state]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing keys {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected keys {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{path}: checkpoint does not match the config's network ({'; '.join(detail)}); "
                              "was it trained with another model.name/model.params?")
    for k, v in model_state.items():
        if tuple(v.shape) != tuple(ckpt_state[k].shape):
            raise CheckpointError(
                f"{path}: checkpoint does not match the config at '{k}': checkpoint {tuple(ckpt_state[k].shape)}"
                f" vs config {tuple(v.shape)} (check data.in_channels, task.*, model.params, model.head_features)"
            )
