"""What only the SQLite backend does: open databases written by older versions."""

from __future__ import annotations

import sqlite3

import pytest

from draftline.store.sqlite import SQLiteJobStore

pytestmark = pytest.mark.anyio


async def test_a_database_from_before_a_field_existed_opens_and_keeps_its_jobs(tmp_path):
    """A job field added later (here: queue_position) becomes a column; old rows read its
    default, and nothing stored before is lost."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, topic TEXT NOT NULL, status TEXT NOT "
                   "NULL, step TEXT, outline TEXT, sections TEXT NOT NULL DEFAULT '[]', article "
                   "TEXT NOT NULL DEFAULT '', error TEXT, created_at REAL NOT NULL, updated_at REAL "
                   "NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, client TEXT NOT NULL DEFAULT '')")
        db.execute("INSERT INTO jobs VALUES ('oldjob0001', 'Tides', 'done', NULL, '[\"A\"]', "
                   "'[{\"title\": \"A\", \"text\": \"Kept.\", \"done\": true}]', '# Tides', NULL, "
                   "1.0, 2.0, 7, '')")  # fmt: skip
    store = SQLiteJobStore(path)
    try:
        job = await store.get("oldjob0001")
        assert (job.status, job.outline, job.article, job.last_seq) == ("done", ["A"], "# Tides", 7)
        assert job.sections[0]["text"] == "Kept." and job.queue_position is None
        job.queue_position = 2
        await store.save(job)
        assert (await store.get("oldjob0001")).queue_position == 2
    finally:
        await store.close()
