"""#9 Peak memory (RSS) scoring one big image: a 2D 4096² image and a 64x1024x1024 stack (CPU).

Each case runs ``Engine.uncertainty`` (the scoring call of the worker: prediction, maps, embedding) in
a fresh subprocess and reads its peak RSS (``VmHWM``; Linux keeps ``ru_maxrss`` across exec, so a child of
a big parent would report the parent's peak); the input array's own size is reported beside it. Quick
mode scores smaller inputs and says so (the peak scales with the voxel count).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import Result

CHILD = r"""
import json, sys, numpy as np
from im2im_engine import Engine, load_config
dims, shape = int(sys.argv[1]), tuple(int(s) for s in sys.argv[2].split("x"))
cfg = load_config({2: "resources/configs/semantic_2d.yaml", 3: "resources/configs/semantic_3d.yaml"}[dims])
eng = Engine.from_config(cfg, device="cpu")
rng = np.random.default_rng(0)
image = rng.integers(100, 4000, size=(1, *shape), dtype=np.uint16)
def hwm():  # VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
unc = eng.uncertainty(image)
peak = hwm()
print(json.dumps({"peak_kb": peak, "before_kb": base, "score": unc.score}))
"""


def _measure(dims: int, shape: tuple[int, ...]) -> dict:
    here = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CHILD, str(dims), "x".join(map(str, shape))], cwd=here,
                         capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHONPATH": str(here)})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"memory benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def run(quick: bool) -> list[Result]:
    """Full mode measures the target sizes; quick mode measures two small sizes (3D: at least the ROI depth, 16, or both are padded to the same work) and extrapolates the
    peak linearly in the voxel count (fixed part = model, imports and window buffers; slope = stitching
    buffers and maps per voxel). One small size alone would bill the fixed part per voxel."""
    cases = [(2, [(1024, 1024), (2048, 2048)], (4096, 4096), 2.0),
             (3, [(16, 512, 512), (32, 512, 512)], (64, 1024, 1024), 8.0)]
    results = []
    for dims, smalls, target, limit in cases:
        runs = [target] if not quick else smalls
        peaks = [(_voxels(shape), _measure(dims, shape)["peak_kb"] / 1024**2) for shape in runs]
        if quick:
            (n1, g1), (n2, g2) = peaks
            slope = (g2 - g1) / (n2 - n1)
            value = g2 + slope * (_voxels(target) - n2)
            how = (f"quick mode: measured {g1:.2f} GB at {'x'.join(map(str, smalls[0]))} and {g2:.2f} GB at "
                   f"{'x'.join(map(str, smalls[1]))}; linear extrapolation ({slope * 1024**3:.0f} bytes/voxel)")
        else:
            value = peaks[0][1]
            how = "measured at the target size"
        results.append(Result(
            id=f"9.{dims}d", what=f"peak RSS scoring {'x'.join(map(str, target))} ({dims}D, BALD)", unit="GB",
            ours={"median": value, "q1": value, "q3": value, "n": 1}, baseline=None, ratio=None, ratio_def="-",
            goal=f"<= {limit:.0f} GB RSS", met=bool(value <= limit), note=how,
            params={"target": list(target), "peaks_gb": peaks},
        ))
    return results


def _voxels(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
