"""Errors in words for the window, and quiet libraries in the GUI's log.

The errors annotation and the engine raise on purpose (a file that cannot be read, a job that failed, an
edit that cannot be applied) already say what is wrong; they are shown as they are. Anything else is a bug
or an environment problem: the person gets one sentence, the traceback goes to the log.
"""

from __future__ import annotations

import logging
import sqlite3
import warnings

log = logging.getLogger(__name__)

#: Libraries that report every odd TIFF tag or metadata quirk on the root logger / as warnings: a person
#: reading the app's log needs none of it (the file's problem, if any, comes back as an error).
NOISY = ("tifffile", "aicsimageio", "aicspylibczi", "bfio", "ome_types", "xmlschema", "imageio", "PIL",
         "numcodecs", "fsspec", "vispy", "napari", "pydantic", "npe2", "matplotlib")


def quiet_libraries() -> None:
    """Raise third-party loggers to ERROR and drop their warnings (called once when the GUI starts)."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in NOISY:
        warnings.filterwarnings("ignore", module=name)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="im2im-active: %(levelname)s: %(message)s")


def _known() -> tuple[type[BaseException], ...]:
    from annotation.editing import EditError
    from annotation.jobs import JobError
    from annotation.project import ProjectError
    from annotation.store.base import StoreError
    from im2im_engine.io import ImageReadError

    return (ImageReadError, JobError, ProjectError, StoreError, EditError)


def in_words(exc: BaseException) -> str:
    """What went wrong, for a person: the message of errors meant to be read, words for the usual
    environment errors, and one sentence (traceback to the log) for anything else."""
    if isinstance(exc, _known()):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or 'a file'} is not there any more"
    if isinstance(exc, PermissionError):
        return f"no permission to read or write {exc.filename or 'a file'}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror.lower()}"
    if isinstance(exc, MemoryError):
        return "not enough memory"
    if isinstance(exc, sqlite3.Error):
        return f"the project database could not be used ({exc})"
    log.error("unexpected error", exc_info=exc)
    return f"an unexpected error ({type(exc).__name__}: {exc}); the details are in the log"
