"""create_app(settings): the app is built from the settings it is given, in-process if need be."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from starlette.testclient import TestClient

from draftline.app import create_app
from draftline.config import Settings


def settings_for(tmp_path, **values) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'd.db'}",
                    openai_base_url="http://127.0.0.1:9/v1", **values)  # fmt: skip


def test_two_apps_with_different_settings_run_side_by_side_in_one_process(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    open_app = create_app(settings_for(tmp_path / "a", model="model-a"))
    locked_app = create_app(settings_for(tmp_path / "b", model="model-b", password="a long secret"))
    with (TestClient(open_app, base_url="http://127.0.0.1") as open_client,
          TestClient(locked_app, base_url="http://127.0.0.1") as locked_client):  # fmt: skip
        assert open_client.get("/").status_code == 200
        asked = locked_client.get("/", follow_redirects=False)
        assert asked.status_code == 303 and asked.headers["location"] == "/login?next=%2F"
        bearer = {"Authorization": "Bearer a long secret"}
        assert locked_client.get("/api/jobs", headers=bearer).status_code == 200
        assert open_client.get("/healthz").json()["model"] == "model-a"  # each its own LLM
        assert locked_client.get("/healthz").json()["model"] == "model-b"


def test_the_app_answers_only_the_hosts_its_settings_name(tmp_path):
    app = create_app(settings_for(tmp_path, allowed_hosts=("draftline.lan",)))
    with TestClient(app, base_url="http://draftline.lan") as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400


def test_importing_the_app_reads_no_settings():
    env = {**os.environ, "DRAFTLINE_PORT": "not a port", "DRAFTLINE_PASSWORD": ""}
    subprocess.run([sys.executable, "-c", "import draftline.app"], env=env, check=True)


def test_while_apps_serve_the_collector_runs_less_often_and_then_as_before(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = gc.get_threshold()
    first = TestClient(create_app(settings_for(tmp_path / "a")), base_url="http://127.0.0.1")
    second = TestClient(create_app(settings_for(tmp_path / "b")), base_url="http://127.0.0.1")
    with first:
        assert gc.get_threshold()[0] >= 10 * before[0]
        assert gc.get_freeze_count() > 0  # what startup built is never walked again
        with second:  # apps side by side: the first to stop leaves the second its setting
            pass
        assert gc.get_threshold()[0] >= 10 * before[0]
        assert first.get("/").status_code == 200
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
