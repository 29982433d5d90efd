"""The review bar over the image: where this image stands, and what to do with it next.

*Done → next* says "I have checked all of this image" (its untouched pixels then train as reviewed) and
opens the next image to review; *Skip* leaves it as it is; *Reset label* starts the correction again from
the pseudo label, the current prediction or empty. What each does to the data is
:class:`annotation.editing.LabelEditor`'s (``mark_done``, ``reset``); the bar only asks for it.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QPushButton, QToolButton, QWidget

from .queue_panel import STATE_COLOURS, STATE_WORDS

RESET_TEXT = {"pseudo": "to the pseudo label", "prediction": "to the current prediction", "empty": "to empty"}


class ReviewBar(QWidget):
    """Buttons: Done → next, Skip, Reset label ▾; and the image's review state and label source."""

    done = Signal()
    skip = Signal()
    reset = Signal(str)  # pseudo | prediction | empty

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("reviewBar")
        self.state = QLabel("")
        self.state.setObjectName("reviewState")
        self.source = QLabel("")
        self.source.setObjectName("muted")
        self.done_button = QPushButton("✓ Done → next")
        self.done_button.setToolTip("I have checked all of this image: mark it done and open the next one "
                                    "(Ctrl+Enter). Its pixels you left as they are then train as reviewed.")
        self.skip_button = QPushButton("Skip ▶")
        self.skip_button.setToolTip("Leave this image as it is and open the next one in the queue (. or Ctrl+Right)")
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset label ▾")
        self.reset_button.setToolTip("Start this image's correction again (undoable with Ctrl+Z)")
        self.reset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.reset_button)
        self.reset_actions: dict[str, QAction] = {}
        for to, text in RESET_TEXT.items():
            act = menu.addAction(f"Reset {text}")
            act.triggered.connect(lambda _c=False, t=to: self.reset.emit(t))
            self.reset_actions[to] = act
        self.reset_button.setMenu(menu)
        self.done_button.clicked.connect(lambda: self.done.emit())
        self.skip_button.clicked.connect(lambda: self.skip.emit())
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 3, 6, 3)
        row.addWidget(self.state)
        row.addWidget(self.source, 1)
        row.addWidget(self.reset_button)
        row.addWidget(self.skip_button)
        row.addWidget(self.done_button)

    def set_state(self, review: str | None, source: str = "", has_prediction: bool = False) -> None:
        """Show the review state of the image on screen and what its label started from."""
        if review is None:
            self.state.setText("")
        else:
            colour = STATE_COLOURS.get(review, "#ccc")
            self.state.setText(f"<b style='color:{colour}'>{STATE_WORDS.get(review, review)}</b>")
        self.source.setText(source)
        self.reset_actions["prediction"].setEnabled(has_prediction)
        for w in (self.done_button, self.skip_button, self.reset_button):
            w.setEnabled(review is not None)
