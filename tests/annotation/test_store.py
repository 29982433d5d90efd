"""The project database: labels as tiles, edits with history, schema versions, concurrent and killed writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from annotation.store import SCHEMA_VERSION, NewerSchemaError, Store, StoreError
from annotation.store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path: Path, image_record):
    s = Store(tmp_path / "project.db", create=True)
    s.add_image(image_record("a", (1, 1, 1, 300, 520)))
    yield s
    s.close()


def test_label_round_trip_keeps_values_and_dtype_range(store: Store) -> None:
    label = np.zeros((300, 520), np.int32)
    label[10:50, 400:510] = 70000  # needs more than 16 bits
    label[290:, :5] = 3
    store.put_label(1, "pseudo", label)
    np.testing.assert_array_equal(store.get_label(1, "pseudo"), label)
    assert store.label_versions(1) == ["pseudo"]
    assert store.get_label(1, "corrected") is None


def test_edit_undo_redo_survive_reopening(tmp_path: Path, store: Store) -> None:
    pseudo = np.zeros((300, 520), np.int32)
    pseudo[100:200, 100:200] = 1
    store.put_label(1, "pseudo", pseudo)
    patch = np.full((1, 20, 30), 2, np.int32)
    store.apply_edit(1, (0, 1, 150, 170, 250, 280), patch, init_from=pseudo, seconds=4.5)
    after = store.get_label(1, "corrected")
    assert (after[150:170, 250:280] == 2).all() and (after[100:150, 100:200] == 1).all()
    store.close()

    reopened = Store(tmp_path / "project.db")
    box = reopened.undo(1)
    assert box == (0, 1, 150, 170, 250, 280)
    np.testing.assert_array_equal(reopened.get_label(1, "corrected"), pseudo)
    reopened.redo(1)
    np.testing.assert_array_equal(reopened.get_label(1, "corrected"), after)
    assert reopened.undo(1) is not None and reopened.undo(1) is None  # nothing more to undo
    assert reopened.counts()["seconds_correcting"] == pytest.approx(4.5)
    reopened.close()


def test_new_edit_drops_the_redo_branch(store: Store) -> None:
    store.apply_edit(1, (0, 1, 0, 2, 0, 2), np.ones((1, 2, 2), np.int32))
    store.undo(1)
    store.apply_edit(1, (0, 1, 5, 6, 5, 6), np.ones((1, 1, 1), np.int32))
    assert store.redo(1) is None
    assert len(store.history(1)) == 1


@pytest.mark.parametrize(
    "box, patch, problem",
    [((0, 1, 290, 310, 0, 10), np.ones((1, 20, 10)), "outside"),
     ((0, 1, 0, 2, 0, 2), -np.ones((1, 2, 2)), ">= 0"),
     ((0, 1, 0, 2, 0, 2), np.ones((1, 3, 3)), "does not match")],
)
def test_bad_edits_are_refused_and_change_nothing(store: Store, box, patch, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        store.apply_edit(1, box, patch)
    assert store.get_label(1, "corrected") is None and store.history(1) == []


def test_database_from_older_schema_is_upgraded(tmp_path: Path, image_record) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO meta (key, value) VALUES ('task', '\"instance\"')")
    conn.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.get_meta("task") == "instance"
        s.add_image(image_record("b"))
        assert s.images()[0].name == "b"


def test_database_from_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NewerSchemaError, match="newer im2im-active"):
        Store(path)
    assert path.read_bytes() == before


def test_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "project.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def _writer(path: str, worker: int, n: int) -> None:
    s = Store(path)
    for i in range(n):
        s.apply_edit(1, (0, 1, worker, worker + 1, i, i + 1), np.full((1, 1, 1), worker + 1, np.int32))
        s.log("save", 1, worker=worker, i=i)
    s.close()


def test_two_processes_writing_lose_nothing(store: Store) -> None:
    n = 60
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.path), w, n)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    label = store.get_label(1, "corrected")
    assert (label[0, :n] == 1).all() and (label[1, :n] == 2).all()
    assert len(store.history(1)) == 2 * n
    assert len(store.events("save")) == 2 * n


def test_kill_9_while_saving_loses_at_most_the_save_in_progress(tmp_path: Path, store: Store) -> None:
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path.cwd())!r})
        from annotation.store import Store
        s = Store({str(store.path)!r})
        i = 0
        while True:
            s.apply_edit(1, (0, 1, i // 500, i // 500 + 1, i % 500, i % 500 + 1), np.ones((1, 1, 1), np.int32))
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.time() + 60
    while acknowledged < 150 and time.time() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store.close()
    with Store(tmp_path / "project.db") as s:
        assert s.integrity_check() == "ok"
        label = s.get_label(1, "corrected")
        saved = int(label.sum())
        assert saved >= acknowledged + 1  # every save that returned is there
        assert len(s.history(1)) == saved


def test_disk_full_is_a_clear_error_and_work_continues_after(store: Store) -> None:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 5, (300, 520)).astype(np.int32)
    store.put_label(1, "pseudo", first)
    pages = store.scalar("PRAGMA page_count")
    store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up now
    noisy = rng.integers(0, 70000, (300, 520)).astype(np.int32)  # incompressible: needs many pages
    with pytest.raises(StoreError, match="nothing was saved"):
        store.put_label(1, "corrected", noisy)
    with pytest.raises(StoreError, match="nothing was saved"):
        store.apply_edit(1, (0, 1, 0, 300, 0, 520), noisy[None])
    assert store.integrity_check() == "ok"
    assert store.get_label(1, "corrected") is None and store.history(1) == []
    np.testing.assert_array_equal(store.get_label(1, "pseudo"), first)
    store.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    store.apply_edit(1, (0, 1, 0, 300, 0, 520), noisy[None])
    np.testing.assert_array_equal(store.get_label(1, "corrected"), noisy)


def test_read_only_database_is_a_clear_error(store: Store) -> None:
    store.conn.execute("PRAGMA query_only = ON")  # what a read-only mount looks like to SQLite writes
    with pytest.raises(StoreError, match="read-only; nothing was saved"):
        store.apply_edit(1, (0, 1, 0, 1, 0, 1), np.ones((1, 1, 1), np.int32))
    store.conn.execute("PRAGMA query_only = OFF")
    store.apply_edit(1, (0, 1, 0, 1, 0, 1), np.ones((1, 1, 1), np.int32))
    assert store.get_label(1, "corrected")[0, 0] == 1


def test_scores_written_inside_a_larger_transaction_roll_back_with_it(store: Store) -> None:
    """The scores upsert (sqlite-utils) joins the store's transaction: an error later in the same write()
    undoes it too, and the transaction is still open for the rest (sqlite-utils 3.x committed it early)."""
    image = store.images()[0].id
    store.add_model(version=1, path="models/v1/model.pt", status="accepted")
    with pytest.raises(RuntimeError, match="later step"), store.write() as conn:
        store.put_scores(1, [{"image_id": image, "score": 0.5}])
        assert conn.in_transaction  # not committed behind the caller's back
        raise RuntimeError("a later step of the same save failed")
    assert store.scores(1) == []
    store.put_scores(1, [{"image_id": image, "score": 0.25}])
    assert [r["score"] for r in store.scores(1)] == [0.25]
