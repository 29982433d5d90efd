"""A full disk and a read-only folder for real: a small tmpfs that fills up, a read-only bind mount.

(tests/annotation/test_store.py simulates both inside SQLite; these go through the kernel: ENOSPC and
EROFS.) Mounting needs root with CAP_SYS_ADMIN, as CI has; elsewhere these tests are skipped with that reason.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from annotation.project import Project, ProjectError
from annotation.store import Store, StoreError


def _mount(*args: str) -> None:
    out = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=60)
    if out.returncode:
        raise OSError(out.stderr.strip() or f"mount exited with {out.returncode}")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator:
    """``mount(*args)``; everything mounted is unmounted at teardown (lazily: nothing is left busy)."""
    done: list[Path] = []

    def mount(*args: str) -> None:
        try:
            _mount(*args)
        except (OSError, FileNotFoundError) as exc:
            pytest.skip(f"cannot mount here (needs root with CAP_SYS_ADMIN and util-linux mount): {exc}")
        done.append(Path(args[-1]))

    yield mount
    for target in reversed(done):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=60)


def _fill(folder: Path) -> Path:
    """Write a file until the file system has no byte left; returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def test_a_really_full_disk_saves_nothing_half_way_and_work_continues(tmp_path: Path, mounts, image_record) -> None:
    fs = tmp_path / "small"
    fs.mkdir()
    mounts("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(fs))
    store = Store(fs / "project.db", create=True)
    try:
        store.add_image(image_record("a", (1, 1, 1, 300, 520)))
        rng = np.random.default_rng(0)
        first = rng.integers(0, 5, (300, 520)).astype(np.int32)
        store.put_label(1, "pseudo", first)
        filler = _fill(fs)
        noisy = rng.integers(0, 70000, (300, 520)).astype(np.int32)  # incompressible: needs ~600 KB
        with pytest.raises(StoreError, match=r"disk is full.*nothing was saved"):
            store.put_label(1, "corrected", noisy)
        with pytest.raises(StoreError, match=r"disk is full.*nothing was saved"):
            store.apply_edit(1, (0, 1, 0, 300, 0, 520), noisy[None])
        assert store.integrity_check() == "ok"
        assert store.get_label(1, "corrected") is None and store.history(1) == []
        np.testing.assert_array_equal(store.get_label(1, "pseudo"), first)
        filler.unlink()  # space freed: the same save now goes through
        store.apply_edit(1, (0, 1, 0, 300, 0, 520), noisy[None])
        np.testing.assert_array_equal(store.get_label(1, "corrected"), noisy)
        assert len(store.history(1)) == 1
    finally:
        store.close()
    with Store(fs / "project.db") as again:  # and it is all there after reopening
        np.testing.assert_array_equal(again.get_label(1, "corrected"), noisy)


def test_a_project_in_a_read_only_folder_is_a_clear_error_and_stays_untouched(tmp_path: Path, mounts,
                                                                              demo_folder) -> None:
    from annotation.setup import init_project

    images, _ = demo_folder
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="semantic")
    project.close()
    db = tmp_path / "proj" / "project.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    view = tmp_path / "view"
    view.mkdir()
    mounts("--bind", str(tmp_path / "proj"), str(view))
    mounts("-o", "remount,bind,ro", str(view))
    assert not os.access(view, os.W_OK)  # even for root: EROFS
    with pytest.raises(ProjectError, match="read-only"):
        Project.open(view)
    with pytest.raises(StoreError, match="read-only"):
        Store(view / "project.db")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in (tmp_path / "proj").glob("project.db*")) == ["project.db"]
