"""The PySide6 + pyqtgraph desktop GUI. The only package that imports Qt; it holds no business logic
(editing lives in :mod:`annotation.editing`, the loop in :mod:`annotation.loop`)."""
