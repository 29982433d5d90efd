"""What a person does in the window, as test helpers: mouse gestures on the image, keys, buttons, menus.

Everything here goes through Qt events or the widgets' own signals (a click on a button, a menu action
triggered), never through the method a button would call.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox


def _mouse(widget, kind: QEvent.Type, pos: QPoint, buttons, button=Qt.MouseButton.NoButton) -> None:
    local = QPointF(pos)
    event = QMouseEvent(kind, local, QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(window, points: list[tuple[float, float]]) -> None:
    """Left-drag through image pixel coordinates (y, x) on the view's viewport."""
    view = window.view
    port = view.glw.viewport()
    left = Qt.MouseButton.LeftButton
    pts = [view.image_to_widget(y, x) for y, x in points]
    _mouse(port, QEvent.Type.MouseButtonPress, pts[0], left, left)
    for p in pts[1:]:
        _mouse(port, QEvent.Type.MouseMove, p, left)
    _mouse(port, QEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton, left)
    QApplication.processEvents()


def drag_widget(widget, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """Left-drag in widget coordinates (e.g. a histogram level line)."""
    left = Qt.MouseButton.LeftButton
    _mouse(widget, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        p = start + (end - start) * i / steps
        _mouse(widget, QEvent.Type.MouseMove, QPoint(int(p.x()), int(p.y())), left)
    _mouse(widget, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton, left)
    QApplication.processEvents()


def click(window, y: float, x: float) -> None:
    port = window.view.glw.viewport()
    p = window.view.image_to_widget(y, x)
    left = Qt.MouseButton.LeftButton
    _mouse(port, QEvent.Type.MouseButtonPress, p, left, left)
    _mouse(port, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.NoButton, left)
    QApplication.processEvents()


def key(window, key_, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    QTest.keyClick(window.view.glw, key_, modifiers)
    QApplication.processEvents()


def press(button) -> None:
    """A left click on a real button."""
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()


def tick(checkbox) -> None:
    """A click on a check box's indicator (its middle may be empty space that does not toggle it)."""
    QTest.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=QPoint(8, checkbox.height() // 2))
    QApplication.processEvents()


def menu_action(window, menu: str, text: str):
    """The action a person finds in the menu bar under ``menu`` (a top-level title like "&Image"), by its
    text; menus are opened (aboutToShow) first so menus filled on demand are current.

    Menus are found as the QMenu children they are (``addMenu`` parents them), not through
    ``QAction.menu()``, whose wrapper PySide6 before 6.12 may hand back already deleted."""
    plain = lambda s: s.replace("&", "")  # noqa: E731
    top = next(m for m in window.menuBar().findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly)
               if plain(m.title()) == plain(menu))

    def find(m: QMenu):
        m.aboutToShow.emit()
        subs = m.findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly)
        own = {id(sub.menuAction()) for sub in subs}
        for act in m.actions():
            if id(act) not in own and plain(act.text()).startswith(text):
                return act
        for sub in subs:
            hit = find(sub)
            if hit is not None:
                return hit
        return None

    act = find(top)
    assert act is not None, f"no '{text}' under {menu}"
    return act


def answer_next_question(button_text: str) -> None:
    """When the next modal message box opens, click its button labelled ``button_text`` (like a person)."""

    def click_it() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click_it)
            return
        target = next(b for b in box.buttons() if b.text().replace("&", "") == button_text)
        QTest.mouseClick(target, Qt.MouseButton.LeftButton)

    QTimer.singleShot(50, click_it)


def stored(window, version: str = "corrected"):
    window.saver.wait()
    return window.project.store.get_label(window.image_id, version)


def paint_row(window, qtbot, value: int = 77, row: int = 40, tool_key=Qt.Key.Key_B):
    """A 3-pixel-wide stroke along ``row`` with the tool picked by its key (brush by default)."""
    key(window, tool_key)
    window.tools.set_size(3)  # radius 1
    window.tools.set_value(value)
    drag(window, [(row, 20), (row, 30), (row, 45), (row, 60)])
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
