"""im2im_engine: a standalone YAML-configured image-to-image deep-learning engine (PyTorch + MONAI).

Knows nothing of projects, SQLite or Qt. Public API::

    from im2im_engine import Engine, Sample, load_config, ConfigError

Heavy modules (torch, MONAI) load lazily on first use of ``Engine``/``Sample`` so that importing the package
(e.g. for ``io`` or ``config``) stays fast for the GUI process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ConfigError, EngineConfig, load_config

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "Engine", "EngineConfig", "Prediction", "Sample", "TrainResult",
    "UncertaintyResult", "__version__", "load_config",
]

if TYPE_CHECKING:
    from .api import Engine, Prediction, UncertaintyResult
    from .checkpoint import CheckpointError
    from .data import Sample
    from .train import TrainResult

_LAZY = {
    "Engine": "api", "Prediction": "api", "UncertaintyResult": "api", "Sample": "data",
    "TrainResult": "train", "CheckpointError": "checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
