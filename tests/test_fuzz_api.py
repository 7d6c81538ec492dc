"""Bad input never costs a 500: hypothesis throws arbitrary requests at the JSON API, in-process."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import in_process

CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=latin-1", "text/plain", "",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
])  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
TOPICS = st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(), min_size=190, max_size=220),
                   JSON_VALUES)  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=3000),
    TOPICS.map(lambda topic: json.dumps({"topic": topic}).encode()),  # ensure_ascii: lone surrogates too
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.just(b"{" * 5000),
    st.just(b'{"topic": "' + b"x" * 20_000 + b'"}'),
)
JOB_IDS = st.one_of(st.text(max_size=40), st.from_regex(r"[A-Za-z0-9_-]{8,32}", fullmatch=True))


@pytest.fixture(scope="module")
def asgi_module(tmp_path_factory, fake_llm):
    """One app for every example: the jobs they start keep running and piling up meanwhile."""
    settings = in_process.settings_for(tmp_path_factory.mktemp("fuzz"), fake_llm.base_url)
    with in_process.serve(settings) as client:
        yield client


def check(response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["error"], str) and response.json()["error"]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=BODIES, content_type=CONTENT_TYPES)
def test_creating_jobs_with_arbitrary_bodies_never_errors(asgi_module, body, content_type):
    response = asgi_module.post("/api/jobs", content=body, headers={"content-type": content_type})
    check(response)
    if response.status_code == 201:
        assert 1 <= len(response.json()["topic"]) <= 200


@FUZZ
@given(job_id=JOB_IDS, action=st.sampled_from(["", "/cancel", "/resume"]),
       method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]))  # fmt: skip
def test_arbitrary_job_ids_and_actions_never_error(asgi_module, job_id, action, method):
    check(asgi_module.request(method, f"/api/jobs/{quote(job_id, safe='')}{action}"))
