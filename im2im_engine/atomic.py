"""Safe file handling: atomic writes (a temp file in the same folder, fsync, then ``os.replace``) and checksums.

Readers (the app, a second process, the next run after a crash) see the old file or the new one, never a
half-written one. Kept free of torch so the GUI and the project code can use it cheaply.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move a finished folder into place; an older folder at ``dst`` goes only once the new one is there."""
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``).

    ``os.umask`` can only be read by setting it; elsewhere it is set and restored at once under a lock, so
    another thread of this module never sees the temporary value.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (recursively, for a folder) the modes ``open``/``mkdir`` would have given it.

    Why: staging in ``mkstemp``/``mkdtemp`` (private 0600/0700, by design) and renaming keeps those modes,
    so an export made with umask 022 would be unreadable to colleagues on a shared server. Exports are
    published with 0666/0777 minus the umask, like any other file the user writes; executable bits are
    never added to files.
    """
    mask = current_umask()
    root = Path(path)
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    if root.is_symlink() or not root.exists():
        return
    if not root.is_dir():
        os.chmod(root, file_mode)
        return
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, dir_mode)
        for name in files:
            full = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.chmod(full, file_mode)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints and exported weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
