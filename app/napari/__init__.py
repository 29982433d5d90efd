"""The napari plugin (npe2): the active-learning loop of im2im-active inside napari.

Manifest: ``napari.yaml`` beside this file, found through the ``napari.manifest`` entry point
(``im2im-active = "app.napari:napari.yaml"``). Widgets in :mod:`._widgets` (Project, Queue, Train,
Export) over one :class:`._session.Session` per viewer; reader, writer and sample data in :mod:`._io`;
napari's paint events turned into stored edits in :mod:`._edits`. Like the desktop app, a thin view: every
decision is :mod:`annotation`'s, and training and scoring run in the engine worker subprocess.

Importing this package imports neither napari nor Qt (npe2 reads the manifest through it).
"""

from pathlib import Path

MANIFEST = Path(__file__).with_name("napari.yaml")
PLUGIN = "im2im-active"
WIDGETS = ("Project", "Queue", "Train", "Export")
