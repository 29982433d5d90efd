"""Noticing image files that were moved, deleted or changed after import.

Images are referenced by path, never copied, so the project must notice when a file disappears or its
content changes: such an image is marked (``missing`` / ``changed``), left out of training and scoring, and
the user is told. Its labels and corrections are kept untouched; when the file comes back unchanged the
image is usable again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .importer import content_hash
from .project import Project


@dataclass(frozen=True)
class ImageProblem:
    image_id: int
    name: str
    path: str
    state: str  # missing | changed

    def __str__(self) -> str:
        what = "is missing" if self.state == "missing" else "changed since it was imported (content hash differs)"
        return f"{self.path}: image {self.name} {what}; its labels are kept, it is left out until restored"


def check_images(project: Project, full: bool = False) -> list[ImageProblem]:
    """Compare every image with what was recorded; cheap (size + mtime) unless ``full`` re-hashes all."""
    store = project.store
    problems = []
    for image in store.images():
        try:
            stat = os.stat(image.path)
        except OSError:
            state = "missing"
        else:
            same_stat = stat.st_size == image.size_bytes and abs(stat.st_mtime - image.mtime) < 1e-3
            if same_stat and not full:
                state = "ok"
            else:
                state = "ok" if content_hash(image.path) == image.content_hash else "changed"
        if state != image.state:
            store.set_image_state(image.id, state)
            store.log("image_state", image.id, state=state, path=image.path)
        if state != "ok":
            problems.append(ImageProblem(image.id, image.name, image.path, state))
    return problems
