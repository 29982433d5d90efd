"""im2im_engine: a standalone YAML-configured image-to-image deep-learning engine (PyTorch + MONAI).

Knows nothing of projects, SQLite or Qt.
"""

__version__ = "0.1.0"
