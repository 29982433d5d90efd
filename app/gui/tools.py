"""The tool controller: turns gestures on the image view into :mod:`annotation.editing` calls.

It owns which tool is active, the brush size and the label value being painted; the edits themselves
(what pixels change, how they are stored and undone) are :class:`annotation.editing.LabelEditor`'s job.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal

from annotation.editing import EditError, LabelEditor

Point = tuple[float, float]

#: tool id -> (label, shortcut, what it does). The help overlay and the toolbar are built from this.
TOOLS: dict[str, tuple[str, str, str]] = {
    "pan": ("Pan", "V", "drag to pan, wheel to zoom (middle-drag pans with any tool)"),
    "brush": ("Brush", "B", "paint the current label; [ and ] change the size"),
    "eraser": ("Eraser", "E", "paint background (0)"),
    "fill": ("Fill", "F", "flood-fill the clicked region with the current label"),
    "polygon": ("Polygon / lasso", "P", "drag a lasso, or click vertices and double-click / Enter to fill"),
    "picker": ("Picker", "K", "click a label to paint with its value"),
    "merge": ("Merge", "M", "click the instance to keep, then the one to merge into it"),
    "delete": ("Delete instance", "X", "click an instance to remove it"),
    "ignore": ("Ignore", "G", "paint pixels training must ignore; Shift erases the ignore mask"),
}
PAINT_TOOLS = ("brush", "eraser", "ignore")


class ToolController(QObject):
    """Implements the view's gesture handler protocol; talks to the current image's LabelEditor."""

    edited = Signal(object, str)  # box, version ("corrected" | "ignore")
    stroke_active = Signal(bool)
    tool_changed = Signal(str)
    value_changed = Signal(int)
    size_changed = Signal(int)
    message = Signal(str)
    path_changed = Signal(list, bool)  # polygon preview points, closed
    committed = Signal()  # an edit was queued for saving (the queue may mark the image corrected)

    def __init__(self, z: Callable[[], int], parent: QObject | None = None):
        super().__init__(parent)
        self._z = z
        self.editor: LabelEditor | None = None
        self.call: Callable | None = None  # Saver.call, for undo/redo after pending writes
        self.tool = "brush"
        self.size = 7
        self.value = 1
        self.task = "semantic"
        self.max_value: int | None = None  # semantic projects: the highest class id (num_classes - 1)
        self._vertices: list[Point] = []
        self._lasso = False
        self._merge_keep: int | None = None
        self._erase_ignore = False

    # ------------------------------------------------------------------ state
    def set_editor(self, editor: LabelEditor | None, task: str) -> None:
        self.cancel()
        self.editor, self.task = editor, task
        if editor is not None and task == "instance" and editor.label.max() > 0:
            self.set_value(editor.new_instance_id())  # never grow an unrelated instance of the next image

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.cancel()
        self.tool = tool
        self.tool_changed.emit(tool)
        self.message.emit(f"{TOOLS[tool][0]}: {TOOLS[tool][2]}")

    def set_value(self, value: int) -> None:
        value = max(0, int(value))
        if self.max_value is not None and value > self.max_value:
            self.message.emit(f"This project has {self.max_value + 1} classes: label values 0–{self.max_value} "
                              f"(0 is background)")
            value = self.max_value
        self.value = value
        self.value_changed.emit(self.value)

    def set_size(self, size: int) -> None:
        self.size = int(min(max(size, 1), 201))
        self.size_changed.emit(self.size)

    def grow(self, factor: float) -> None:
        new = round(self.size * factor)
        self.set_size(new if new != self.size else self.size + (1 if factor > 1 else -1))

    @property
    def radius(self) -> int:
        return self.size // 2

    def cursor_diameter(self) -> float | None:
        return float(2 * self.radius + 1) if self.tool in PAINT_TOOLS else None

    # ------------------------------------------------------------------ gestures (GestureHandler)
    def wants_drag(self) -> bool:
        return self.editor is not None and self.tool in (*PAINT_TOOLS, "polygon")

    def drag_start(self, p: Point, modifiers: Qt.KeyboardModifier) -> None:
        ed = self.editor
        if ed is None:
            return
        if self.tool == "polygon":
            self._vertices, self._lasso = [p], True
            return
        version, value = "corrected", self.value
        if self.tool == "eraser":
            value = 0
        elif self.tool == "ignore":
            version = "ignore"
            value = 0 if modifiers & Qt.KeyboardModifier.ShiftModifier else 1
        ed.begin_stroke(value, self.radius, self._z(), version)
        self.stroke_active.emit(True)
        self.edited.emit(ed.extend_stroke(p), version)  # the press point (drags are detected later)

    def drag_move(self, p: Point) -> None:
        ed = self.editor
        if ed is None:
            return
        if self.tool == "polygon" and self._lasso:
            self._vertices.append(p)
            self.path_changed.emit(list(self._vertices), False)
            return
        if ed.stroke_active:
            box = ed.extend_stroke(p)
            self.edited.emit(box, ed.stroke_version)

    def drag_end(self) -> None:
        ed = self.editor
        if ed is None:
            return
        if self.tool == "polygon" and self._lasso:
            self._lasso = False
            self._close_polygon()
            return
        if ed.stroke_active:
            version = ed.stroke_version
            box = self._guard(ed.end_stroke)
            self.stroke_active.emit(False)
            self.edited.emit(box, version)
            self.committed.emit()

    def click(self, p: Point, double: bool, modifiers: Qt.KeyboardModifier) -> bool:
        ed, tool, z = self.editor, self.tool, self._z()
        if ed is None or tool == "pan":
            return False
        if tool in PAINT_TOOLS:  # a click paints one dab
            self.drag_start(p, modifiers)
            self.drag_end()
        elif tool == "fill":
            self._commit(lambda: ed.fill(p, self.value, z))
        elif tool == "polygon":
            if double:
                self._close_polygon()
            else:
                self._vertices.append(p)
                self.path_changed.emit(list(self._vertices), False)
        elif tool == "picker":
            self.set_value(ed.pick(p, z))
            self.message.emit(f"Painting with label {self.value}")
        elif tool == "delete":
            target = ed.pick(p, z)
            if target:
                self._commit(lambda: ed.delete(target))
                self.message.emit(f"Deleted label {target}")
        elif tool == "merge":
            target = ed.pick(p, z)
            if self._merge_keep is None:
                if target:
                    self._merge_keep = target
                    self.message.emit(f"Merge: keeping {target}; now click the label to merge into it")
            else:
                keep, self._merge_keep = self._merge_keep, None
                self._commit(lambda: ed.merge(keep, target))
                self.message.emit(f"Merged {target} into {keep}")
        return True

    # ------------------------------------------------------------------ actions
    def close_polygon(self) -> None:
        self._close_polygon()

    def _close_polygon(self) -> None:
        ed, vertices = self.editor, self._vertices
        self._vertices = []
        self.path_changed.emit([], False)
        if ed is not None and len(vertices) >= 3:
            self._commit(lambda: ed.polygon(vertices, self.value, self._z()))

    def new_instance(self) -> None:
        if self.editor is None:
            return
        if self.task == "semantic":
            self.message.emit("Semantic task: choose the class with the number keys 1–9")
            return
        self.set_value(self.editor.new_instance_id())
        self.message.emit(f"New instance {self.value}")

    def accept_prediction(self) -> None:
        ed = self.editor
        if ed is not None:
            self._commit(ed.accept_prediction)

    def reset_label(self, to: str) -> None:
        """*Reset label* to ``pseudo``, ``prediction`` or ``empty`` (one undoable edit)."""
        ed = self.editor
        if ed is None:
            return
        self.cancel()
        words = {"pseudo": "the pseudo label", "prediction": "the current prediction", "empty": "empty"}
        before = ed.label.copy()
        self._commit(lambda: ed.reset(to))
        if not (ed.label != before).any():
            self.message.emit(f"The label already is {words.get(to, to)}")
        else:
            self.message.emit(f"Label reset to {words.get(to, to)} (Ctrl+Z undoes it)")

    def undo(self) -> None:
        self._history(True)

    def redo(self) -> None:
        self._history(False)

    def _history(self, undo: bool) -> None:
        ed = self.editor
        if ed is None:
            return
        if ed.stroke_active:
            self.cancel()
        if self.call is None:
            step = ed.history_step(undo)
            self._after_step(ed, step, undo)
            return
        self.call(lambda: ed.history_step(undo), lambda step: self._after_step(ed, step, undo))

    def _after_step(self, ed: LabelEditor, step, undo: bool) -> None:
        if ed is not self.editor:  # the image changed meanwhile: the store is right, nothing to draw
            return
        if step is None:
            self.message.emit("Nothing to undo" if undo else "Nothing to redo")
            return
        box = ed.apply_patch(step)
        self.edited.emit(box, step[0])
        self.committed.emit()
        self.message.emit("Undone" if undo else "Redone")

    def cancel(self) -> None:
        """Drop an unfinished stroke/polygon/merge (Esc, tool or image switch)."""
        ed = self.editor
        if ed is not None and ed.stroke_active:
            version = ed.stroke_version
            self.edited.emit(ed.cancel_stroke(), version)
            self.stroke_active.emit(False)
        self._vertices, self._lasso, self._merge_keep = [], False, None
        self.path_changed.emit([], False)

    def _commit(self, fn: Callable) -> None:
        box = self._guard(fn)
        if box is not None:
            self.edited.emit(box, "corrected")
            self.committed.emit()

    def _guard(self, fn: Callable):
        try:
            return fn()
        except EditError as exc:
            self.message.emit(str(exc))
            return None
