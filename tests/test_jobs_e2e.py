"""End to end: the real app, the real openai client, a fake LLM on the wire.

What a viewer's event stream carries is read from the app under uvicorn (`client`); pages, the
JSON API and what jobs end with are tested with the app in-process (`asgi`)."""

from __future__ import annotations

import re

from draftline.pocketflow_nodes import OUTLINE_MAX_TOKENS
from tests.html_checks import active_markup
from tests.jobs_api import api, create, finished
from tests.sse import read_events, wait_for


def test_happy_path_streams_outline_sections_and_article_then_done(client, llm):
    llm.token_delay = 0.01  # slow enough that sections are seen growing
    job = create(client)
    events = read_events(client, job["id"])

    assert events[0].name == "update" and 'id="progress"' in events[0].data  # snapshot first
    assert events[-1].name == "done"
    assert all(e.id is not None for e in events)
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids)

    progress = [e.progress for e in events if e.progress is not None]
    assert progress == sorted(progress), progress
    assert progress[-1] == 100 and 33 in progress and 66 in progress

    first_section = [e.data for e in events if 'id="section-0"' in e.data and "hx-swap-oob" in e.data]
    lengths = [len(re.findall(r"word\d+", d.split('id="section-0"')[1].split("</article>")[0])) for d in first_section]
    assert max(lengths) == 40 and any(0 < n < 40 for n in lengths), lengths  # grew while written

    final = client.get(f"/api/jobs/{job['id']}").json()
    assert final["status"] == "done" and final["progress"] == 100 and final["step"] is None
    assert final["outline"] == [f"Tide pools: part {i}" for i in (1, 2, 3)]
    assert [s["title"] for s in final["sections"]] == final["outline"]
    assert all(s["text"].startswith("This part covers") for s in final["sections"])
    assert final["article"].startswith("# Tide pools") and "Friendly:" in final["article"]
    assert final["error"] is None


def test_sections_are_written_concurrently(asgi, llm):
    llm.token_delay, llm.sections = 0.005, 4
    job = create(asgi)
    finished(asgi, job["id"])
    sections = llm.calls_of("section")
    assert len(sections) == 4
    first_finish = min(c.finished for c in sections)
    assert all(c.started < first_finish for c in sections), "sections ran one after another"


def test_refresh_mid_job_shows_sections_already_written(asgi, llm):
    llm.token_delay, llm.sections, llm.section_words = 0.01, 2, 20
    job = create(asgi)
    api = f"/api/jobs/{job['id']}"

    def first_section_done():
        current = asgi.get(api).json()
        return current if current["status"] == "running" and current["step"] == "style" else None

    mid = wait_for(first_section_done)
    page = asgi.get(f"/jobs/{job['id']}")
    assert page.status_code == 200
    assert mid["sections"][0]["text"][:40] in page.text
    assert 'sse-connect="/jobs/' in page.text and "<noscript>" in page.text
    assert re.search(r'<progress max="100" value="(6[6-9]|[7-9]\d)"', page.text)

    assert finished(asgi, job["id"])["status"] == "done"
    final = asgi.get(f"/jobs/{job['id']}")
    assert "sse-connect" not in final.text and "<noscript>" not in final.text
    assert "Download .md" in final.text


def test_reconnect_with_last_event_id_replays_only_what_was_missed(client, llm):
    llm.token_delay = 0.01
    job = create(client)
    first = read_events(client, job["id"], limit=3)  # hang up early
    assert first[-1].name == "update"
    rest = read_events(client, job["id"], last_event_id=first[-1].id)
    assert int(rest[0].id) > int(first[-1].id)  # no snapshot, no repeats
    assert rest[-1].name == "done"


def test_stream_of_a_finished_job_is_one_done_event(client, llm):
    job = create(client)
    read_events(client, job["id"])
    again = read_events(client, job["id"])
    assert [e.name for e in again] == ["done"]
    assert "Friendly:" in again[0].data


def test_json_api_returns_the_documented_fields(asgi, llm):
    job = create(asgi, "  Why the   sky is blue  ")
    assert job["topic"] == "Why the sky is blue"
    assert job["status"] in ("queued", "running")
    assert set(job) == {"id", "topic", "status", "progress", "step", "outline", "sections",
                        "article", "error", "options", "usage", "created_at",
                        "updated_at"}  # fmt: skip
    assert job["options"] == {"length": "medium", "tone": "warm", "audience": "", "language": "",
                              "review_outline": False}  # fmt: skip
    finished(asgi, job["id"])
    assert asgi.get(f"/api/jobs/{job['id']}").json()["status"] == "done"


def test_plain_form_post_redirects_and_the_page_refreshes_itself(asgi, llm):
    response = asgi.post("/jobs", data={"topic": "Bicycles"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/jobs/[\w-]+", location)  # a path: never built from the Host header
    page = asgi.get(location)
    assert '<meta http-equiv="refresh"' in page.text  # inside <noscript>, for browsers without JS
    assert "Bicycles" in page.text


def test_suggested_topic_button_starts_a_job_in_one_click(asgi, llm):
    home = asgi.get("/")
    suggestion = re.search(r'name="topic" value="([^"]+)" formnovalidate', home.text).group(1)
    response = asgi.post("/jobs", data={"topic": ["", suggestion]})  # empty field + button
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    assert asgi.get(f"/api/jobs/{job_id}").json()["topic"] == suggestion


def test_htmx_post_gets_the_job_fragment_and_a_pushed_url(asgi, llm):
    response = asgi.post("/jobs", data={"topic": "Tide pools"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"].startswith("/jobs/")
    assert "<html" not in response.text and 'sse-connect="/jobs/' in response.text


def test_job_page_varies_on_hx_request(asgi, llm):
    job = create(asgi)
    full = asgi.get(f"/jobs/{job['id']}")
    fragment = asgi.get(f"/jobs/{job['id']}", headers={"HX-Request": "true"})
    assert "HX-Request" in [v.strip() for v in full.headers["vary"].split(",")] and "<html" in full.text
    assert "<html" not in fragment.text and 'id="progress"' in fragment.text


def test_markdown_download_is_the_finished_article(asgi, llm):
    job = create(asgi, "Tide pools")
    assert asgi.get(f"/jobs/{job['id']}/article.md").status_code in (409, 200)
    finished(asgi, job["id"])
    download = asgi.get(f"/jobs/{job['id']}/article.md")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/markdown")
    assert download.headers["content-disposition"] == 'attachment; filename="tide-pools.md"'
    assert download.text.strip() == asgi.get(f"/api/jobs/{job['id']}").json()["article"]


def test_home_lists_recent_jobs_with_status(asgi, llm):
    job = create(asgi, "Lighthouses")
    finished(asgi, job["id"])
    home = asgi.get("/")
    assert f'href="/jobs/{job["id"]}">Lighthouses</a>' in home.text
    assert "badge-done" in home.text


def test_healthz_says_which_model_answers(asgi):
    health = asgi.get("/healthz")
    assert health.status_code == 200
    assert health.json()["model"] == "fake" and health.json()["llm_configured"] is True


def test_hostile_llm_output_arrives_inert(client, llm):
    llm.hostile = True
    job = create(client)
    events = read_events(client, job["id"])
    page = client.get(f"/jobs/{job['id']}").text
    # Our own page has two scripts, the vendored htmx files, and one htmx form of ours per
    # section ("Write this section again"); LLM text adds nothing.
    sections = len(client.get(f"/api/jobs/{job['id']}").json()["sections"])
    assert active_markup(page) == ["script", "script"] + ["form[hx-post]"] * sections
    for event in events:
        assert set(active_markup(event.data)) <= {"form[hx-post]"}, event.data
    ours = f'hx-post="/jobs/{job["id"]}/sections/'
    assert page.count("hx-post=") == page.count(ours) == sections  # and nowhere else
    assert "&lt;script&gt;alert" in page  # shown as text, not run
    assert "hx-disable" in page  # LLM-written regions can never drive htmx


def test_a_broken_llm_fails_the_job_with_a_readable_reason(client, llm):
    llm.error_status = 401
    job = create(client)
    events = read_events(client, job["id"])
    assert events[-1].name == "done"
    final = client.get(f"/api/jobs/{job['id']}").json()
    assert final["status"] == "failed"
    assert "OPENAI_API_KEY" in final["error"]
    assert "check OPENAI_API_KEY" in client.get(f"/jobs/{job['id']}").text


def test_an_outline_that_never_parses_is_retried_then_fails(asgi, llm):
    llm.outline_reply = "I am sorry, I cannot help with outlines today."
    job = create(asgi)
    finished(asgi, job["id"])
    final = asgi.get(f"/api/jobs/{job['id']}").json()
    assert len(llm.calls_of("outline")) == 3  # DRAFTLINE_LLM_RETRIES default
    assert final["status"] == "failed" and "outline" in final["error"]


def test_a_good_models_section_titles_are_kept_whole(asgi, llm):
    titles = ["What a Fresnel lens is", "Who keeps the light on", "The ships that rely on it"]
    llm.outline_reply = "".join(f"- {title}\n" for title in titles)
    job = create(asgi, "How lighthouses work")
    finished(asgi, job["id"])
    final = api(asgi, job["id"])
    assert final["outline"] == titles
    assert all(f"## {title}\n" in final["article"] for title in titles)


def test_an_outline_cut_short_by_max_tokens_loses_only_its_last_titles_dangling_words(asgi, llm):
    # The app asks for at most OUTLINE_MAX_TOKENS; the fake stops there, as a real server does.
    items = "- What a Fresnel lens is\n- Who keeps the light on\n- Why ships still need the"
    preamble = OUTLINE_MAX_TOKENS - len(re.findall(r"\S+\s*|\s+", items))
    llm.outline_reply = "Well " * (preamble - 1) + "then:\n" + items + " lamp at night\n"
    job = create(asgi, "How lighthouses work")
    finished(asgi, job["id"])
    assert api(asgi, job["id"])["outline"] == [
        "What a Fresnel lens is", "Who keeps the light on", "Why ships still need"]  # fmt: skip


def test_app_without_an_llm_starts_and_says_what_to_set(start_asgi):
    http = start_asgi(openai_base_url="", openai_api_key="", local_model="off")
    assert http.get("/healthz").json()["llm_configured"] is False
    home = http.get("/")
    assert home.status_code == 200 and "OPENAI_API_KEY" in home.text
