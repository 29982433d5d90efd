"""Pinned environments for the third-party tools our exports must load in (bioimage.io, MMV_Im2Im).

Why a layered virtualenv and not pins in the ``dev`` extra: ``bioimageio.core`` 0.11.0 (which pins
``bioimageio.spec`` 0.5.12.0) fails on every model with pydantic >= 2.12 ("'index_key' is expected to be an
integer or a string"), and the app itself runs on current pydantic; pinning pydantic < 2.12 for the whole
development environment would test the app on a pydantic its users do not have. So each tool gets its own
venv whose own site-packages (the pins) come first and which sees this environment's packages after them
(a ``.pth`` line): torch, onnxruntime, numpy and MONAI are reused rather than downloaded again (a second
torch from PyPI would be the multi-GB CUDA build), while pydantic & co. are the pinned ones. This project's
environment is never modified (pip does not uninstall packages outside the venv it runs in).

Built once per pin set and Python under the pytest cache (``.pytest_cache/d/toolenv/``), with a lock, and
marked ready only after every install succeeded. Building needs PyPI; a failed build fails the test with
pip's output (it is never skipped: the point is that these checks really run in ``make test``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: bioimage.io: core 0.11.0 + its spec 0.5.12.0 validate and test our packages with pydantic 2.11
#: (with pydantic >= 2.12 every model fails with the 'index_key' error above).
BIOIMAGEIO = ("bioimageio.core==0.11.0", "bioimageio.spec==0.5.12.0", "pydantic==2.11.10")
#: MMV_Im2Im 0.8.1's data loading: its package __init__ pulls the whole trainer (lightning, gudhi, numba,
#: tensorboard, ...), so the package goes in without dependencies and only what its data loading imports is
#: installed (bioio with the readers MMV_Im2Im's own ``monai_bio_reader`` uses).
MMV_IM2IM_NO_DEPS = ("mmv_im2im==0.8.1",)
MMV_IM2IM = ("bioio==3.6.0", "bioio-tifffile==1.3.1", "bioio-ome-tiff==1.4.0", "pandas")


class ToolEnvError(RuntimeError):
    """The environment could not be built (pip's output is in the message)."""


def _pip(python: Path, args: Sequence[str]) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=_clean_env())
    if proc.returncode != 0:
        raise ToolEnvError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH: the tools must not see this checkout's packages through it."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def cache_dir(config) -> Path:
    """Where tool envs live: the pytest cache, or (``-p no:cacheprovider``) a folder in the temp dir."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("toolenv"))
    return Path(tempfile.gettempdir()) / "im2im-active-toolenv"


def tool_python(cache: Path, name: str, requirements: Sequence[str], no_deps: Sequence[str] = ()) -> Path:
    """The Python of a layered venv with ``requirements`` (and ``no_deps`` without their dependencies)."""
    base_paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    key = hashlib.sha256(json.dumps([sys.version, sys.prefix, base_paths, list(requirements), list(no_deps)])
                         .encode()).hexdigest()[:12]
    root = Path(cache) / f"{name}-{key}"
    python = root / "bin" / "python"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "READY").exists():
            return python
        shutil.rmtree(root, ignore_errors=True)  # a build that died half-way
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, env=_clean_env())
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        # after this venv's own site-packages: its pins win, the rest comes from the project's environment
        Path(site, "zz_project_env.pth").write_text("\n".join(base_paths) + "\n")
        if no_deps:
            _pip(python, ["--no-deps", *no_deps])
        _pip(python, list(requirements))
        (root / "READY").write_text(json.dumps({"requirements": list(requirements), "no_deps": list(no_deps)}))
    return python


def run_tool(python: Path, code: str, *args: str, cwd: Path | None = None, timeout: float = 900) \
        -> subprocess.CompletedProcess:
    """Run ``code`` in the tool env with this project's packages made unimportable (a user's clean env)."""
    guard = "import sys\nfor _m in ('im2im_engine', 'annotation', 'app'):\n    sys.modules[_m] = None\n"
    return subprocess.run([str(python), "-c", guard + code, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=_clean_env())
