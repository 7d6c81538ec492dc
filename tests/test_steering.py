"""Steering the article: options before writing, through the form and the JSON API.

Tested with the app in-process (`asgi`), but for what a rewrite's event stream carries and a
restart, which run the app under uvicorn (`client`, `start_app`)."""

from __future__ import annotations

import html
import io
import json
import re

import docx
import pytest

from draftline.brief import MAX_INSTRUCTION_LENGTH
from tests.html_checks import TagCollector
from tests.jobs_api import api, create, finished
from tests.sse import read_events, wait_for


def test_options_reach_the_job_its_page_and_the_api(asgi, llm):
    body = {"topic": "Tide pools", "length": "short", "tone": "formal", "audience": "nurses",
            "language": "French"}  # fmt: skip
    job = asgi.post("/api/jobs", json=body).json()
    assert job["options"] == {"length": "short", "tone": "formal", "audience": "nurses",
                              "language": "French", "review_outline": False}  # fmt: skip
    finished(asgi, job["id"])
    page = asgi.get(f"/jobs/{job['id']}").text
    assert "Short · Formal · for nurses · in French" in page


def test_bad_options_get_422_naming_each_field(asgi, llm):
    response = asgi.post("/api/jobs", json={"topic": "Tides", "tone": "angry",
                                            "language": "x" * 41, "length": 3})  # fmt: skip
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"tone", "language", "length"}
    assert response.json()["error"] in errors.values()
    assert asgi.get("/api/jobs").json()["jobs"] == []  # nothing was started


def test_a_form_with_bad_options_is_redrawn_with_each_message_beside_its_field(asgi, llm):
    form = {"topic": "", "tone": "angry", "audience": "kids", "length": "short"}
    page = asgi.post("/jobs", data=form)
    assert page.status_code == 422 and "<html" in page.text
    assert 'id="topic-error"' in page.text and 'id="tone-error"' in page.text
    assert 'aria-describedby="tone-error"' in page.text
    assert 'value="kids"' in page.text  # what was typed is kept
    assert '<details class="more-options" open>' in page.text
    htmx = asgi.post("/jobs", data=form, headers={"HX-Request": "true"})
    assert htmx.status_code == 422 and htmx.headers["HX-Retarget"] == "#topic-form"
    assert 'id="tone-error"' in htmx.text and "<html" not in htmx.text


def test_a_form_post_with_options_starts_the_job_with_them(asgi, llm):
    form = {"topic": "Tides", "length": "long", "tone": "playful", "review_outline": ""}
    response = asgi.post("/jobs", data=form)
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    options = asgi.get(f"/api/jobs/{job_id}").json()["options"]
    assert (options["length"], options["tone"], options["review_outline"]) == ("long", "playful",
                                                                                False)  # fmt: skip


def test_the_form_offers_the_options_without_javascript(asgi):
    page = asgi.get("/").text
    assert '<details class="more-options">' in page and "<summary>More options</summary>" in page
    for name in ("length", "tone", "audience", "language", "review_outline"):
        assert f'name="{name}"' in page
    assert '<form method="post" action="/jobs"' in page  # a plain form post, without htmx


def test_a_finished_article_downloads_as_markdown_html_and_word(asgi, llm):
    job = asgi.post("/api/jobs", json={"topic": "Crème brûlée at home"}).json()
    assert asgi.get(f"/jobs/{job['id']}/article.html").status_code == 409  # not finished yet
    finished(asgi, job["id"])
    article = asgi.get(f"/api/jobs/{job['id']}").json()["article"]
    page = asgi.get(f"/jobs/{job['id']}").text
    for extension in ("md", "html", "docx"):
        assert f'href="/jobs/{job["id"]}/article.{extension}" download' in page
    md = asgi.get(f"/jobs/{job['id']}/article.md")
    assert md.text == article + "\n"
    assert md.headers["content-disposition"] == 'attachment; filename="creme-brulee-at-home.md"'
    html = asgi.get(f"/jobs/{job['id']}/article.html")
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.startswith("<!doctype html>") and "<script" not in html.text
    word = asgi.get(f"/jobs/{job['id']}/article.docx")
    assert word.headers["content-disposition"].endswith('.docx"')
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(word.content)).paragraphs)
    assert article.splitlines()[-1].strip()[:20] in text
    assert asgi.get(f"/jobs/{job['id']}/article.pdf").status_code == 404


# Outline review


def settled(client, job_id: str, statuses=("review", "done", "failed", "cancelled")) -> dict:
    """The job once it rests: waiting for review, finished, or stopped."""
    return wait_for(lambda: (job := api(client, job_id))["status"] in statuses and job)


def test_a_reviewed_outline_is_written_exactly_as_approved(asgi, llm):
    job = asgi.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()
    review = settled(asgi, job["id"])
    assert review["status"] == "review" and review["article"] == ""
    assert len(llm.calls_of("section")) == 0  # nothing written before approval
    assert "Review the outline" in asgi.get(f"/jobs/{job['id']}").text
    titles = ["Why the moon matters", "Spring & neap tides", "Reading a tide table"]
    changed = asgi.put(f"/api/jobs/{job['id']}/outline", json={"titles": titles})
    assert changed.status_code == 200 and changed.json()["outline"] == titles
    assert asgi.post(f"/api/jobs/{job['id']}/write").status_code == 202
    done = settled(asgi, job["id"], ("done", "failed"))
    assert done["status"] == "done" and done["outline"] == titles
    assert [s["title"] for s in done["sections"]] == titles
    asked = [c.request["messages"][-1]["content"] for c in llm.calls_of("section")]
    assert sorted(t for t in titles if any(f'"{t}"' in p for p in asked)) == sorted(titles)
    assert len(llm.calls_of("outline")) == 1  # the approved outline was not planned again


def test_a_job_in_review_survives_a_restart_and_holds_no_running_slot(start_app, llm):
    server = start_app(DRAFTLINE_MAX_RUNNING_JOBS="1")
    with server.client() as http:
        waiting = http.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()
        settled(http, waiting["id"])
        other = create(http, "Sourdough")  # the one slot is free: review holds none
        assert settled(http, other["id"])["status"] == "done"
    server.stop()
    server.start()
    with server.client() as http:
        assert api(http, waiting["id"])["status"] == "review"


def test_a_new_outline_follows_the_instruction_and_stops_for_review_again(asgi, llm):
    job = asgi.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()
    settled(asgi, job["id"])
    again = asgi.post(f"/api/jobs/{job['id']}/outline/regenerate",
                      json={"instruction": "fewer, more practical"})  # fmt: skip
    assert again.status_code == 202
    assert settled(asgi, job["id"])["status"] == "review"
    prompt = llm.calls_of("outline")[-1].request["messages"][-1]["content"]
    assert "fewer, more practical" in prompt


@pytest.mark.parametrize("titles, status", [
    ([], 422), (["x" * 121], 422), ([""], 422), (["a"] * 11, 422), ("Moon", 422), ([3], 422),
])  # fmt: skip
def test_bad_outlines_are_refused(asgi, llm, titles, status):
    job = asgi.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()
    settled(asgi, job["id"])
    answer = asgi.put(f"/api/jobs/{job['id']}/outline", json={"titles": titles})
    assert answer.status_code == status and answer.json()["error"]
    assert api(asgi, job["id"])["outline"] == review_titles(llm)


def review_titles(llm) -> list[str]:
    return ["Tides: part 1", "Tides: part 2", "Tides: part 3"]


def test_the_outline_is_edited_with_plain_forms(asgi, llm):
    job = asgi.post("/api/jobs", json={"topic": "Tides", "review_outline": True}).json()
    settled(asgi, job["id"])
    url = f"/jobs/{job['id']}/outline"
    renamed = asgi.post(url, data={"action": "rename", "index": "0", "title": "Moon"})
    assert renamed.status_code == 303
    asgi.post(url, data={"action": "add", "title": "Shore"})
    asgi.post(url, data={"action": "down", "index": "0"})
    asgi.post(url, data={"action": "remove", "index": "1"})
    assert api(asgi, job["id"])["outline"] == ["Tides: part 2", "Tides: part 3", "Shore"]
    htmx = asgi.post(url, data={"action": "up", "index": "2"}, headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and htmx.text.startswith('<section id="sections"')
    assert api(asgi, job["id"])["outline"] == ["Tides: part 2", "Shore", "Tides: part 3"]
    bad = asgi.post(url, data={"action": "rename", "index": "0", "title": " "})
    assert bad.status_code == 422 and 'id="outline-error"' in bad.text
    assert asgi.post(f"/jobs/{job['id']}/write").status_code == 303
    assert settled(asgi, job["id"], ("done",))["outline"][1] == "Shore"


def test_writing_is_refused_unless_the_outline_waits_for_review(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    assert asgi.post(f"/api/jobs/{job['id']}/write").status_code == 409
    answer = asgi.put(f"/api/jobs/{job['id']}/outline", json={"titles": ["A"]})
    assert answer.status_code == 409


# One section again, edits and versions


def test_one_section_is_written_again_and_the_article_restyled(client, llm):
    job = create(client)
    read_events(client, job["id"])
    before = api(client, job["id"])
    llm.calls.clear()
    answer = client.post(f"/api/jobs/{job['id']}/sections/2/regenerate",
                         json={"instruction": "shorter"})  # fmt: skip
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    events = read_events(client, job["id"])
    assert events[-1].name == "done" and any("Writing it again" in e.data for e in events)
    after = api(client, job["id"])
    assert after["status"] == "done" and after["error"] is None
    assert "anew (shorter)" in after["sections"][1]["text"]
    assert [s["text"] for i, s in enumerate(after["sections"]) if i != 1] == [
        s["text"] for i, s in enumerate(before["sections"]) if i != 1]  # fmt: skip
    assert [c.kind for c in llm.calls] == ["section", "style"]  # no other section re-paid
    assert "anew (shorter)" in after["article"]
    page = client.get(f"/jobs/{job['id']}").text
    assert "What changed" in page and "<ins>" in page and "Restore previous" in page
    versions = client.get(f"/api/jobs/{job['id']}/versions").json()["versions"]
    assert [v["kind"] for v in versions] == ["styled", "section 2 rewritten"]

    restored = client.post(f"/api/jobs/{job['id']}/sections/2/restore").json()
    assert restored["sections"][1]["text"] == before["sections"][1]["text"]
    assert restored["article"] == before["article"]


def test_an_edit_makes_a_version_and_any_version_can_be_restored(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    first = api(asgi, job["id"])["article"]
    edited = asgi.put(f"/api/jobs/{job['id']}/article", json={"article": "# Mine\n\nBy hand."})
    assert edited.status_code == 200 and edited.json()["article"] == "# Mine\n\nBy hand."
    assert asgi.get(f"/jobs/{job['id']}/article.md").text == "# Mine\n\nBy hand.\n"
    form = asgi.post(f"/jobs/{job['id']}/article", data={"article": "# Mine\r\n\r\nAgain."})
    assert form.status_code == 303
    versions = asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"]
    assert [(v["n"], v["kind"]) for v in versions] == [(1, "styled"), (2, "edited"), (3, "edited")]
    assert versions[2]["article"] == "# Mine\n\nAgain."
    page = asgi.get(f"/jobs/{job['id']}/versions").text
    assert "Changes from v2" in page and "<del>" in page and "Restore v1" in page
    assert asgi.post(f"/jobs/{job['id']}/versions/1/restore").status_code == 303
    assert api(asgi, job["id"])["article"] == first
    assert asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"][-1]["kind"] == (
        "restored v1")  # fmt: skip
    unknown = asgi.post(f"/api/jobs/{job['id']}/versions/9/restore")
    assert unknown.status_code == 404 and unknown.json() == {
        "error": "This article has no version 9."}  # fmt: skip
    assert asgi.post(f"/jobs/{job['id']}/versions/9/restore").status_code == 404
    assert len(asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"]) == 4  # none added
    bad = asgi.put(f"/api/jobs/{job['id']}/article", json={"article": "  "})
    assert bad.status_code == 422
    assert asgi.post(f"/jobs/{job['id']}/article", data={"article": ""}).status_code == 422


def test_saving_while_a_section_is_written_again_answers_409(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    llm.token_delay = 0.05
    asgi.post(f"/api/jobs/{job['id']}/sections/1/regenerate", json={})
    answer = asgi.put(f"/api/jobs/{job['id']}/article", json={"article": "# Mine"})
    assert answer.status_code == 409 and "being written" in answer.json()["error"]
    assert asgi.post(f"/api/jobs/{job['id']}/sections/2/regenerate", json={}).status_code == 409
    finished(asgi, job["id"])
    assert api(asgi, job["id"])["status"] == "done"


def attributes(tag: str) -> dict:
    """The attributes of one start tag, as a browser reads them."""
    parser = TagCollector()
    parser.feed(tag)
    return parser.tags[0][1]


def test_a_form_save_refused_while_a_section_is_written_again_keeps_the_typed_text(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    before = api(asgi, job["id"])["article"]
    llm.token_delay = 0.05
    asgi.post(f"/api/jobs/{job['id']}/sections/1/regenerate", json={})
    assert api(asgi, job["id"])["status"] in ("queued", "running")
    typed = '# Mine\n\nTyped by hand: <b>bold</b> & "kept".'
    page = asgi.post(f"/jobs/{job['id']}/article", data={"article": typed})
    assert page.status_code == 409
    assert "You can edit it once it is done" not in page.text  # the form, not the notice
    message = re.search(r'<p id="article-error" class="error" role="alert">([^<]+)</p>\s*'
                        r'<textarea ([^>]*)>([^<]*)</textarea>', page.text)  # fmt: skip
    assert message, "no message right above the text box"
    assert "being written again" in message[1]
    assert html.unescape(message[3]) == typed  # what was typed, as typed
    box = attributes(f"<textarea {message[2]}>")
    assert box["aria-describedby"] == "article-error" and "autofocus" in box
    assert "aria-invalid" not in box  # the text is fine; only the moment is wrong
    asgi.post(f"/api/jobs/{job['id']}/cancel")
    assert api(asgi, job["id"])["article"] == before  # nothing was saved
    versions = asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"]
    assert [v["kind"] for v in versions] == ["styled"]


def test_a_cancelled_rewrite_keeps_the_section_and_article_as_they_were(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    before = api(asgi, job["id"])
    llm.token_delay = 0.2
    asgi.post(f"/api/jobs/{job['id']}/sections/1/regenerate", json={"instruction": "longer"})
    wait_for(lambda: api(asgi, job["id"])["status"] == "running")
    cancelled = asgi.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "done" and "did not finish" in cancelled["error"]
    assert cancelled["sections"] == before["sections"] and cancelled["article"] == before["article"]


def test_a_restyle_that_fails_after_a_rewrite_keeps_the_section_and_article_as_they_were(
        asgi, llm):  # fmt: skip
    job = create(asgi)
    finished(asgi, job["id"])
    before = api(asgi, job["id"])
    llm.calls.clear()
    llm.error_status, llm.error_kinds = 500, ("style",)  # the section is rewritten, then this
    asgi.post(f"/api/jobs/{job['id']}/sections/1/regenerate", json={"instruction": "longer"})
    wait_for(lambda: api(asgi, job["id"])["error"] is not None)
    failed = api(asgi, job["id"])
    assert failed["status"] == "done" and "did not finish" in failed["error"]
    assert [c.kind for c in llm.calls][:2] == ["section", "style"]  # the style failed
    assert failed["sections"] == before["sections"] and failed["article"] == before["article"]
    versions = asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"]
    assert [v["kind"] for v in versions] == ["styled"]
    assert asgi.post(f"/api/jobs/{job['id']}/sections/1/restore").status_code == 409


def test_restoring_a_section_again_puts_back_the_rewrite_and_its_article(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    before = api(asgi, job["id"])
    asgi.post(f"/api/jobs/{job['id']}/sections/1/regenerate", json={"instruction": "shorter"})
    wait_for(lambda: "anew" in api(asgi, job["id"])["sections"][0]["text"]
             and api(asgi, job["id"])["status"] == "done")  # fmt: skip
    rewritten = api(asgi, job["id"])
    restored = asgi.post(f"/api/jobs/{job['id']}/sections/1/restore").json()
    assert restored["sections"] == before["sections"] and restored["article"] == before["article"]
    again = asgi.post(f"/api/jobs/{job['id']}/sections/1/restore").json()
    assert again["sections"] == rewritten["sections"] and again["article"] == rewritten["article"]
    versions = asgi.get(f"/api/jobs/{job['id']}/versions").json()["versions"]
    assert [v["kind"] for v in versions] == ["styled", "section 1 rewritten", "restored v1",
                                             "restored v2"]  # fmt: skip


@pytest.mark.parametrize("n", ["0", "4", "x", "-1"])
def test_unknown_sections_are_404(asgi, llm, n):
    job = create(asgi)
    finished(asgi, job["id"])
    assert asgi.post(f"/api/jobs/{job['id']}/sections/{n}/regenerate", json={}).status_code == 404
    assert asgi.post(f"/jobs/{job['id']}/sections/{n}/regenerate", data={}).status_code == 404


# What every steering route of the API refuses, and how: always `{"error": "..."}`

UNKNOWN_JOB = "AAAAAAAAAAAA"  # a job id's shape (token_urlsafe(9)), of no job
ROUTES = {  # each steering route of the API: its method, its path after the job's, a good body
    "set outline": ("PUT", "/outline", {"titles": ["One"]}),
    "plan outline again": ("POST", "/outline/regenerate", {"instruction": "fewer"}),
    "write": ("POST", "/write", None),
    "rewrite section": ("POST", "/sections/1/regenerate", {"instruction": "shorter"}),
    "restore section": ("POST", "/sections/1/restore", None),
    "save article": ("PUT", "/article", {"article": "# Mine"}),
    "versions": ("GET", "/versions", None),
    "restore version": ("POST", "/versions/1/restore", None),
}
TAKES_JSON = [name for name, (_, _, body) in ROUTES.items() if body is not None]
TOO_LONG = "x" * (MAX_INSTRUCTION_LENGTH + 1)


def refused(answer, status: int, message: str) -> None:
    """`answer` is `status` with `{"error": ...}` alone, its message containing `message`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["error"] and message in body["error"], body


def send(client, route: str, job_id: str, content_type: str | None = None,
         body: object = "the route's own") -> object:  # fmt: skip
    """Call `route` of the API for `job_id`: with its good body, or this one (bytes are sent as
    they are, anything else as JSON), under this Content-Type."""
    method, path, good = ROUTES[route]
    body = good if body == "the route's own" else body
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    headers = {"Content-Type": content_type or "application/json"} if content is not None else {}
    return client.request(method, f"/api/jobs/{job_id}{path}", content=content, headers=headers)


def job_in(client, llm, state: str) -> str:
    """A job's id, in `state`: `review` (its outline waits), `done`, or `rewriting` (done, and
    section 1 is being written again, slowly enough to last the test)."""
    job = client.post("/api/jobs", json={"topic": "Tides", "review_outline": state == "review"})
    job_id = job.json()["id"]
    settled(client, job_id)
    if state == "rewriting":
        llm.token_delay = 0.2
        assert client.post(f"/api/jobs/{job_id}/sections/1/regenerate", json={}).status_code == 202
    rewriting = ("queued", "running")
    assert api(client, job_id)["status"] in (rewriting if state == "rewriting" else (state,))
    return job_id


@pytest.mark.parametrize("route", ROUTES)
def test_every_steering_route_answers_404_in_json_for_an_unknown_job(asgi, llm, route):
    refused(send(asgi, route, UNKNOWN_JOB), 404, "There is no article with that id")
    assert not llm.calls


REFUSALS = [
    # the route, the job's state, the Content-Type, the body, the answer, part of its message
    *[(route, "review" if "outline" in route else "done", "text/plain", json.dumps(
        ROUTES[route][2]).encode(), 415, "Content-Type: application/json")
      for route in TAKES_JSON],
    ("set outline", "review", "application/x-www-form-urlencoded", b"titles=One", 415,
     "Content-Type: application/json"),
    ("save article", "done", "application/x-www-form-urlencoded", b"article=Mine", 415,
     "Content-Type: application/json"),
    *[(route, "review" if "outline" in route else "done", None, b'{"titles": ["One"', 400,
       "not valid JSON") for route in TAKES_JSON],
    ("rewrite section", "done", None, b"shorter", 400, "not valid JSON"),
    ("save article", "done", None, b"\xff\xfe{}", 400, "not valid JSON"),  # not UTF-8
    ("set outline", "review", None, ["One"], 422, "Send a JSON object."),
    ("plan outline again", "review", None, {"instruction": TOO_LONG}, 422,
     f"Please keep the instruction to {MAX_INSTRUCTION_LENGTH} characters (this one has "
     f"{MAX_INSTRUCTION_LENGTH + 1})."),
    ("rewrite section", "done", None, {"instruction": TOO_LONG}, 422,
     f"Please keep the instruction to {MAX_INSTRUCTION_LENGTH} characters"),
    ("plan outline again", "review", None, {"instruction": 3}, 422,
     "The instruction must be text."),
    ("rewrite section", "done", None, {"instruction": ["shorter"]}, 422,
     "The instruction must be text."),
    ("set outline", "review", None, {"titles": ["One", 2]}, 422,
     "Send the titles as a list of strings."),
    ("set outline", "review", None, {}, 422, "Send the titles as a list of strings."),
    ("save article", "done", None, {"article": 3}, 422,
     "Send the article as a string of Markdown."),
    ("save article", "done", None, {"article": ["# Mine"]}, 422,
     "Send the article as a string of Markdown."),
    ("save article", "done", None, {}, 422, "Send the article as a string of Markdown."),
    ("restore section", "done", None, None, 409, "there is nothing to restore"),
    ("plan outline again", "done", None, {"instruction": ""}, 409,
     "can only be planned again before it is written"),
    ("plan outline again", "rewriting", None, {"instruction": ""}, 409,
     "can only be planned again before it is written"),
    ("restore version", "rewriting", None, None, 409, "restore it once it is done"),
]  # fmt: skip


@pytest.mark.parametrize("route, state, content_type, body, status, message", REFUSALS,
                         ids=[f"{r[0]}-{r[1]}-{r[4]}-{i}" for i, r in enumerate(REFUSALS)])
def test_the_steering_api_refuses_what_does_not_fit_with_a_json_error(
        asgi, llm, route, state, content_type, body, status, message):  # fmt: skip
    job_id = job_in(asgi, llm, state)
    before, calls = api(asgi, job_id), len(llm.calls)
    versions = asgi.get(f"/api/jobs/{job_id}/versions").json()

    refused(send(asgi, route, job_id, content_type, body), status, message)
    assert asgi.get(f"/api/jobs/{job_id}/versions").json() == versions  # nothing was kept
    if state == "rewriting":  # the rewrite goes on as it was
        assert api(asgi, job_id)["status"] in ("queued", "running")
        asgi.post(f"/api/jobs/{job_id}/cancel")
    else:  # nothing changed, nothing started
        assert api(asgi, job_id) == before and len(llm.calls) == calls


@pytest.mark.parametrize("route", ["plan outline again", "rewrite section"])
def test_an_instruction_as_long_as_the_limit_is_taken(asgi, llm, route):
    job_id = job_in(asgi, llm, "review" if "outline" in route else "done")
    instruction = "shorter, " * 33 + "yes"  # words, as a person types them
    assert len(instruction) == MAX_INSTRUCTION_LENGTH == 300  # as README says
    assert send(asgi, route, job_id, body={"instruction": instruction}).status_code == 202
    settled(asgi, job_id, ("review",) if "outline" in route else ("done",))
    assert instruction in llm.calls[-1 if "outline" in route else -2].request["messages"][-1][
        "content"]  # fmt: skip
