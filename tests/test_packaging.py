"""Packaging claims: license metadata in the current form, and the lower bounds `make lowest` pins."""

from __future__ import annotations

import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _floors():
    return runpy.run_path(str(ROOT / ".ci" / "lowest_constraints.py"))["floors"]


def test_lowest_constraints_pin_each_lower_bound(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=2.0", "numcodecs<0.16", "scipy >= 1.13, <2",'
        ' "dask[array]>=2024.1", "plain"]\n[project.optional-dependencies]\ntest = ["pytest>=8"]\nother = ["ruff>=0.5"]\n')
    assert _floors()(pyproject) == {"numpy": "2.0", "scipy": "1.13", "dask": "2024.1", "pytest": "8"}
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "lowest_constraints.py"), str(pyproject)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["numpy==2.0", "scipy==1.13", "dask==2024.1", "pytest==8"]


def test_the_projects_floors_cover_what_the_code_needs() -> None:
    floors = _floors()(ROOT / "pyproject.toml")
    version = lambda name: tuple(int(p) for p in floors[name].split("."))  # noqa: E731
    assert version("scikit-image") >= (0, 26)  # remove_small_objects(max_size=...)
    assert version("numpy") >= (2, 0)  # np.trapezoid
    assert "scikit-learn" not in floors  # never imported here; modAL depends on it itself
    assert floors["torch"] == "2.13"  # the CPU build CI installs: the lowest torch tested


@pytest.mark.slow
def test_wheel_has_spdx_license_metadata_and_no_deprecation_banner(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "project.license" not in log and "License classifiers are deprecated" not in log
    (wheel,) = tmp_path.glob("im2im_active-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist())
    assert "License-Expression: BSD-3-Clause" in meta and "License-File: LICENSE" in meta
    assert "Requires-Python: >=3.11" in meta
