"""Render the README's screenshots of the review workflow offscreen (not a test; run it by hand).

    QT_QPA_PLATFORM=offscreen python tests/app/review_screenshots.py PROJECT docs/

PROJECT should have a trained, scored model (e.g. the demo after a couple of rounds). Writes
``screenshot.png`` (the window on the top-ranked image, the learning curve), ``review.png`` (after a
correction and two *Done → next*) and ``review-outlines.png`` (labels as outlines over the uncertainty,
zoomed in). Everything is done the way a person does it: keys, clicks, mouse drags on the image.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gui_actions import drag, key, press
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.gui.launch import SCREENSHOT_SIZE, Launcher, application, wait_for


def settle(window, ms: int = 400) -> None:
    wait_for(lambda: not window.saver.busy, 10000)
    wait_for(lambda: not window.queue._thumbs_pending, 10000)
    wait_for(lambda: False, ms)  # let deferred repaints (zoom label, counters) land
    QApplication.processEvents()


def shoot(window, path: Path) -> None:
    settle(window)
    window.grab().save(str(path), "PNG")
    print(f"wrote {path}")


def next_loaded(window, action) -> None:
    before = window.image_id
    action()
    wait_for(lambda: window.image_id != before and window.view.loaded.record.id == window.image_id, 20000)


def main(project: str, out: str) -> int:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    application()
    launcher = Launcher(quiet=True)
    window = launcher.open(project)
    if window is None:
        return 1
    window.training.auto.setChecked(False)
    window.resize(*SCREENSHOT_SIZE)
    wait_for(lambda: window.view.loaded is not None, 30000)
    window.training.tabs.setCurrentIndex(1)  # the learning curve and its caption
    shoot(window, out_dir / "screenshot.png")

    # correct the top image: a new instance painted where the model missed one, then Done → next
    key(window, Qt.Key.Key_N)
    window.tools.set_size(9)
    h, w = window.view.loaded.data.shape[-2:]
    drag(window, [(h * 0.82, w * 0.10), (h * 0.84, w * 0.14), (h * 0.86, w * 0.18), (h * 0.84, w * 0.12)])
    next_loaded(window, lambda: press(window.review.done_button))
    next_loaded(window, lambda: key(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier))
    window.training.tabs.setCurrentIndex(2)  # the models table: steps, check, note
    window.queue.table.scrollToBottom()  # the images marked done, at the end of the queue
    shoot(window, out_dir / "review.png")

    key(window, Qt.Key.Key_O)  # labels as outlines, over the uncertainty heat map
    for _ in range(2):
        key(window, Qt.Key.Key_Plus)
    window.training.tabs.setCurrentIndex(1)
    shoot(window, out_dir / "review-outlines.png")
    launcher.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
