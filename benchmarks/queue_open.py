"""#8 Open a project of 10,000 images and scroll its queue (no baseline: absolute goals).

The project is a demo project whose database gets 10,000 image rows (``Store.add_image``) pointing at
symlinks to its few real files, each with a stored score and embedding from a model version, so the
queue ranks them like a scored project. "Open" is what ``im2im-active gui PROJECT`` does: the launcher
opens the project, builds the main window, checks the files off the GUI thread, ranks the queue and
shows the first image; the clock stops when the image is on screen. "Scroll" steps the queue's scroll
bar through the list while thumbnails are made in the background; each step's event-loop time is a frame.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .common import Result, percentile, spread
from .fixtures import demo_project, qt_app


def grow(root: Path, n: int) -> None:
    """Add image rows (symlinks to the real files) up to ``n`` images, with scores from a model v1."""
    from annotation.project import Project

    project = Project.open(root)
    store = project.store
    real = store.images()
    links = root / "many"
    links.mkdir()
    rng = np.random.default_rng(0)
    with store.write() as c:
        for i in range(n - len(real)):
            src = real[i % len(real)]
            link = links / f"img{i:05d}.tif"
            os.symlink(src.path, link)
            store.add_image({"path": str(link), "name": link.stem, "shape": list(src.shape), "dims": "TCZYX",
                             "dtype": src.dtype, "channel_names": src.channel_names,
                             "content_hash": src.content_hash, "size_bytes": src.size_bytes, "mtime": src.mtime},
                            conn=c)
    store.add_model(version=1, path="models/v1/model.pt", status="accepted", round=0, metrics={})
    store.set_current_model(1)
    rows = []
    for im in store.images():
        s = float(rng.random())
        rows.append({"image_id": im.id, "score": s, "details": {"score": s, "entropy": s, "bald": s / 2,
                     "margin": 1 - s, "least_confidence": s / 3},
                     "embedding": rng.standard_normal(16).astype(np.float32)})
    store.put_scores(1, rows)
    project.close()


def _open_and_scroll(root: Path, steps: int) -> tuple[float, list[float], int]:
    from PySide6.QtWidgets import QApplication

    from app.gui.launch import Launcher, wait_for

    launcher = Launcher(quiet=True)
    t0 = time.perf_counter()
    window = launcher.open(str(root))
    assert window is not None
    wait_for(lambda: window.view.loaded is not None, 120_000)
    opened = time.perf_counter() - t0
    table = window.queue.table
    bar = table.verticalScrollBar()
    frames = []
    for i in range(steps):
        t = time.perf_counter()
        bar.setValue(int(bar.maximum() * i / max(steps - 1, 1)))
        QApplication.processEvents()
        QApplication.processEvents()
        frames.append((time.perf_counter() - t) * 1e3)
    rows = table.rowCount()
    launcher.close()
    QApplication.processEvents()
    return opened, frames, rows


def _in_subprocess(root: Path, steps: int) -> tuple[float, list[float], int]:
    """One open + scroll in a fresh process: a closed window's thumbnail workers must not slow the next."""
    import json
    import subprocess
    import sys

    here = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "benchmarks.queue_open", str(root), str(steps)], cwd=here,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(here), "QT_QPA_PLATFORM": "offscreen"})
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not line:
        raise RuntimeError(f"queue benchmark subprocess failed: {out.stderr[-2000:]}")
    data = json.loads(line[-1])
    return data["open"], data["frames"], data["rows"]


def run(quick: bool) -> list[Result]:
    n = 10_000
    opens, steps = (2, 60) if quick else (3, 200)
    t_open: list[float] = []
    frames: list[float] = []
    with demo_project(4, 128, steps=5, finetune_steps=5) as root:
        grow(root, n)
        rows = 0
        for _ in range(opens):
            t, f, rows = _in_subprocess(root, steps)
            t_open.append(t)
            frames += f
    worst = max(frames, default=0.0)
    return [Result(
        id="8", what=f"open a {n}-image project (to first image shown); scroll the queue", unit="s to open",
        ours=spread(t_open), baseline=None, ratio=None, ratio_def="-", goal="<= 2 s to open; no frame > 50 ms",
        met=bool(max(t_open) <= 2.0 and worst <= 50.0),
        note=f"{rows} queue rows; scroll frames p50 {percentile(frames, 50):.1f} / p95 {percentile(frames, 95):.1f}"
             f" / max {worst:.1f} ms over {len(frames)} steps",
        params={"images": n, "frames_ms": spread(frames), "max_frame_ms": worst},
    )]


if __name__ == "__main__":
    import json
    import sys

    qt_app()
    opened, frame_ms, n_rows = _open_and_scroll(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps({"open": opened, "frames": frame_ms, "rows": n_rows}), flush=True)
    os._exit(0)  # thumbnail workers may still run: their results are not wanted
