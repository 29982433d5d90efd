"""#5 GUI event-loop latency while training, against the same window idle.

A 5 ms repeating QTimer records the time between its ticks: the event loop's latency as a user feels it
(a 5 ms wait plus however long the loop was busy elsewhere). The ratio is taken on these intervals, not
on the lateness alone (interval - 5 ms), because idle lateness is ~0.1 ms and any ratio over it is noise. The
main window is open on a demo project with an image shown; "busy" is a real training round started from
the training panel (worker subprocess, progress events and plots arriving in the GUI), "idle" is the same
window with nothing running. Idle and busy segments alternate.
"""

from __future__ import annotations

import time

from .common import Result, percentile, spread
from .fixtures import demo_project, qt_app


def _lateness(seconds: float, until=None) -> list[float]:
    """Milliseconds between 5 ms ticks, over ``seconds`` (or until ``until()`` is true)."""
    from PySide6.QtCore import QEventLoop, QTimer

    interval = 5
    out: list[float] = []
    last = time.perf_counter()
    end = last + seconds
    loop = QEventLoop()

    def tick() -> None:
        nonlocal last
        now = time.perf_counter()
        out.append((now - last) * 1e3)
        last = now
        if now >= end or (until is not None and until()):
            loop.quit()

    timer = QTimer()
    timer.setTimerType(timer.timerType().PreciseTimer)
    timer.setInterval(interval)
    timer.timeout.connect(tick)
    timer.start()
    loop.exec()
    timer.stop()
    return out[1:]


def run(quick: bool) -> list[Result]:
    from PySide6.QtWidgets import QApplication

    from annotation.project import Project
    from app.gui.launch import wait_for
    from app.gui.main_window import MainWindow

    qt_app()
    rounds, seconds = (1, 6.0) if quick else (2, 15.0)
    idle: list[float] = []
    busy: list[float] = []
    with demo_project(6, 256, steps=400, finetune_steps=400) as root:
        project = Project.open(root)
        window = MainWindow(project)
        window.resize(1500, 920)
        window.show()
        window.start()
        wait_for(lambda: window.view.loaded is not None, 30_000)
        for _ in range(rounds):
            idle += _lateness(seconds)
            window.trigger("train")
            wait_for(lambda: window.training.running, 10_000)
            time.sleep(0)  # let the worker start before measuring
            busy += _lateness(seconds, until=lambda: not window.training.running)
            window.training.stop()
            wait_for(lambda: not window.training.running, 60_000)
        window.shutdown()
        window.close()
        QApplication.processEvents()
        project.close()
    p_idle, p_busy = percentile(idle, 95), percentile(busy, 95)
    ratio = p_busy / max(p_idle, 1e-3)
    return [*_desktop_row(idle, busy, p_idle, p_busy, ratio, seconds, rounds), *_napari_rows(quick)]


def _napari_rows(quick: bool) -> list[Result]:
    """#5.napari: the same measure in napari with the plugin (its own module; a failure is its row's note)."""
    from .napari_latency import _skipped
    from .napari_latency import run as napari_run

    try:
        return napari_run(quick)
    except Exception as exc:  # the desktop row must survive a napari problem
        return _skipped(f"failed: {type(exc).__name__}: {exc}")


def _desktop_row(idle, busy, p_idle, p_busy, ratio, seconds, rounds) -> list[Result]:
    return [Result(
        id="5", what="GUI event-loop lateness while a training round runs", unit="ms between 5 ms ticks",
        ours=spread(busy), baseline=spread(idle), ratio={"median": ratio, "q1": ratio, "q3": ratio, "n": 1},
        ratio_def="p95 busy / p95 idle (lower is better)", goal="p95 <= 50 ms, busy/idle <= 2x",
        met=bool(p_busy <= 50.0 and ratio <= 2.0),
        note=f"p95 tick interval busy {p_busy:.1f} ms, idle {p_idle:.1f} ms (lateness {p_busy - 5:.1f} / "
             f"{p_idle - 5:.1f} ms), max busy {max(busy, default=0):.0f} ms; {len(busy)} busy ticks over "
             f"{rounds} round(s)",
        params={"p95_busy_ms": p_busy, "p95_idle_ms": p_idle, "seconds": seconds, "rounds": rounds},
    )]
