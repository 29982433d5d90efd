"""#5.napari: napari's event-loop latency while a training round runs from the plugin, against idle.

The same measure as #5 (:mod:`benchmarks.latency`: a 5 ms repeating QTimer, the time between its ticks), in
a napari viewer with the plugin's four widgets docked and the demo project's top image open (Image layer,
Labels layer, ignore and prediction layers). "Busy" is a real round started from the plugin: the engine
worker subprocess trains while a superqt thread worker follows it and the Train widget plots its progress;
"idle" is the same viewer with nothing running. Idle and busy segments alternate.

The viewer is shown when Qt can make an OpenGL context (a display, or Xvfb), so napari's canvas draws as
it would for a person; on Qt's offscreen platform (no OpenGL) it stays hidden and nothing is drawn — the
row's note says which.
"""

from __future__ import annotations

import time

from .common import Result, percentile, spread
from .fixtures import demo_project, qt_app
from .latency import _lateness


def _wait(condition, timeout_s: float) -> bool:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    return bool(condition())


def _skipped(note: str) -> list[Result]:
    return [Result(id="5.napari", what="napari event-loop lateness while a training round runs (plugin)",
                   unit="ms between 5 ms ticks", ours={"n": 0}, baseline=None, ratio=None,
                   ratio_def="p95 busy / p95 idle (lower is better)", goal="p95 <= 50 ms, busy/idle <= 2x",
                   met=None, note=note)]


def run(quick: bool) -> list[Result]:
    try:
        import napari
    except ImportError:
        return _skipped("napari is not installed (pip install 'im2im-active[napari]')")
    from app.napari.__main__ import dock_all, register_plugin
    from app.napari._headless import allow_without_opengl

    qt_app()
    drawn = not allow_without_opengl()
    register_plugin()
    rounds, seconds = (1, 6.0) if quick else (2, 15.0)
    idle: list[float] = []
    busy: list[float] = []
    with demo_project(6, 256, steps=400, finetune_steps=400) as root:
        viewer = napari.Viewer(show=drawn)
        if drawn:
            viewer.window._qt_window.resize(1500, 920)
        widgets = dock_all(viewer)
        widgets["Train"].auto.setChecked(False)
        session = widgets["Project"].session
        widgets["Project"].open(root)
        if not _wait(lambda: session.image_id is not None, 60):
            viewer.close()
            return _skipped("the project's first image did not open within 60 s")
        for _ in range(rounds):
            idle += _lateness(seconds)
            session.start_round()
            busy += _lateness(seconds, until=lambda: not session.running)
            session.stop_round()
            _wait(lambda: not session.running, 120)
        viewer.close()
        _wait(lambda: session.project is None, 30)
    p_idle, p_busy = percentile(idle, 95), percentile(busy, 95)
    ratio = p_busy / max(p_idle, 1e-3)
    return [Result(
        id="5.napari", what="napari event-loop lateness while a training round runs (plugin)",
        unit="ms between 5 ms ticks", ours=spread(busy), baseline=spread(idle),
        ratio={"median": ratio, "q1": ratio, "q3": ratio, "n": 1},
        ratio_def="p95 busy / p95 idle (lower is better)", goal="p95 <= 50 ms, busy/idle <= 2x",
        met=bool(p_busy <= 50.0 and ratio <= 2.0),
        note=f"napari {napari.__version__}, viewer {'shown (OpenGL)' if drawn else 'hidden (no OpenGL here)'}; "
             f"p95 tick interval busy {p_busy:.1f} ms, idle {p_idle:.1f} ms (lateness {p_busy - 5:.1f} / "
             f"{p_idle - 5:.1f} ms), max busy {max(busy, default=0):.0f} ms; {len(busy)} busy ticks over "
             f"{rounds} round(s)",
        params={"p95_busy_ms": p_busy, "p95_idle_ms": p_idle, "seconds": seconds, "rounds": rounds,
                "drawn": drawn},
    )]
