"""Every keyboard shortcut in one table, and the help overlay built from it (F1 or ?).

Why one table: the menus, the tool buttons' tooltips and the help overlay all read it, so a shortcut
cannot exist without being documented.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from .tools import TOOLS

#: action id -> (menu text, key sequences, description); tools come from tools.TOOLS.
ACTIONS: dict[str, tuple[str, list[str], str]] = {
    **{f"tool:{k}": (label, [key], desc) for k, (label, key, desc) in TOOLS.items()},
    "undo": ("Undo", ["Ctrl+Z"], "undo the last edit of this image (also after reopening)"),
    "redo": ("Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo"),
    "new_instance": ("New instance", ["N"], "paint with an unused instance id"),
    "accept": ("Accept prediction", ["Ctrl+Shift+A"], "copy the model's prediction into the correction"),
    "brush_smaller": ("Smaller brush", ["["], "brush size −"),
    "brush_bigger": ("Bigger brush", ["]"], "brush size +"),
    "close_polygon": ("Close polygon", ["Return"], "fill the polygon being clicked"),
    "cancel": ("Cancel", ["Esc"], "drop the unfinished stroke, polygon or merge; close this help"),
    "done_next": ("Done → next", ["Ctrl+Return", "Ctrl+Enter"],
                  "mark this image done (all of it checked) and open the next one to review"),
    "skip": ("Skip", [], "leave this image as it is and open the next one (like Next image)"),
    "next": ("Next image", [".", "Ctrl+Right"], "next image in the queue"),
    "previous": ("Previous image", [",", "Ctrl+Left"], "previous image in the queue"),
    "z_up": ("Next Z plane", ["PgUp"], "move up one plane"),
    "z_down": ("Previous Z plane", ["PgDown"], "move down one plane"),
    "channel": ("Next channel", ["C"], "cycle channels / composite"),
    "toggle:labels": ("Labels overlay", ["L"], "show/hide the labels"),
    "toggle:prediction": ("Prediction overlay", ["R"], "show/hide the prediction outlines"),
    "toggle:uncertainty": ("Uncertainty overlay", ["U"], "show/hide the uncertainty heatmap"),
    "toggle:ignore": ("Ignore overlay", ["I"], "show/hide the ignore mask"),
    "reset_view": ("Fit image", ["0"], "zoom to fit"),
    "zoom_in": ("Zoom in", ["+", "="], "zoom in around the centre"),
    "zoom_out": ("Zoom out", ["-"], "zoom out around the centre"),
    "outline": ("Labels as outlines", ["O"], "draw the labels as outlines only / filled"),
    "auto_contrast": ("Auto contrast", ["A"], "contrast from this image's percentiles, for this channel"),
    "train": ("Train now", ["Ctrl+T"], "start a training round in the background"),
    "score": ("Score now", [], "score the images with the current model and re-rank the queue"),
    "stop": ("Stop", [], "stop the running round or scoring"),
    "help": ("Keyboard shortcuts", ["F1", "?"], "show this help"),
    **{f"value:{i}": (f"Label {i}", [str(i)], "") for i in range(1, 10)},
}


def key_sequences(action_id: str) -> list[QKeySequence]:
    return [QKeySequence(k) for k in ACTIONS[action_id][1]]


class HelpOverlay(QWidget):
    """A translucent panel over the main window listing every shortcut; any key or click closes it."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("helpOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            "#helpOverlay { background: rgba(10, 10, 14, 215); }"
            " QLabel { color: #eee; font-size: 12px; } QLabel#keys { color: #ffd166; font-weight: bold; }"
            " QLabel#title { font-size: 18px; font-weight: bold; }"
        )
        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 30, 40, 30)
        title = QLabel("Keyboard shortcuts   (F1, ? or Esc to close)")
        title.setObjectName("title")
        outer.addWidget(title)
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        rows = [(t, keys, d) for k, (t, keys, d) in ACTIONS.items() if not k.startswith("value:")]
        rows.append(("Label 1–9", ["1 … 9"], "paint with class / label 1–9"))
        rows.append(("Pan / zoom", ["middle-drag, wheel"], "with any tool"))
        half = (len(rows) + 1) // 2
        for i, (text, keys, desc) in enumerate(rows):
            col = 0 if i < half else 3
            row = i if i < half else i - half
            k = QLabel(" / ".join(keys) or "menu")
            k.setObjectName("keys")
            grid.addWidget(k, row, col)
            grid.addWidget(QLabel(text), row, col + 1)
            d = QLabel(desc)
            d.setStyleSheet("color: #aaa;")
            grid.addWidget(d, row, col + 2)
        outer.addLayout(grid)
        outer.addStretch(1)
        self.hide()
        parent.installEventFilter(self)

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.setGeometry(self.parentWidget().rect())
            self.raise_()
            self.show()

    def mousePressEvent(self, event) -> None:
        self.hide()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
        return False
