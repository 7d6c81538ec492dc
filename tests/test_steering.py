"""Steering the article: options before writing, through the form and the JSON API."""

from __future__ import annotations

import io

import docx

from tests.sse import read_events


def test_options_reach_the_job_its_page_and_the_api(client, llm):
    body = {"topic": "Tide pools", "length": "short", "tone": "formal", "audience": "nurses",
            "language": "French"}  # fmt: skip
    job = client.post("/api/jobs", json=body).json()
    assert job["options"] == {"length": "short", "tone": "formal", "audience": "nurses",
                              "language": "French", "review_outline": False}  # fmt: skip
    read_events(client, job["id"])
    page = client.get(f"/jobs/{job['id']}").text
    assert "Short · Formal · for nurses · in French" in page


def test_bad_options_get_422_naming_each_field(client, llm):
    response = client.post("/api/jobs", json={"topic": "Tides", "tone": "angry",
                                              "language": "x" * 41, "length": 3})  # fmt: skip
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"tone", "language", "length"}
    assert response.json()["error"] in errors.values()
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was started


def test_a_form_with_bad_options_is_redrawn_with_each_message_beside_its_field(client, llm):
    form = {"topic": "", "tone": "angry", "audience": "kids", "length": "short"}
    page = client.post("/jobs", data=form)
    assert page.status_code == 422 and "<html" in page.text
    assert 'id="topic-error"' in page.text and 'id="tone-error"' in page.text
    assert 'aria-describedby="tone-error"' in page.text
    assert 'value="kids"' in page.text  # what was typed is kept
    assert '<details class="more-options" open>' in page.text
    htmx = client.post("/jobs", data=form, headers={"HX-Request": "true"})
    assert htmx.status_code == 422 and htmx.headers["HX-Retarget"] == "#topic-form"
    assert 'id="tone-error"' in htmx.text and "<html" not in htmx.text


def test_a_form_post_with_options_starts_the_job_with_them(client, llm):
    form = {"topic": "Tides", "length": "long", "tone": "playful", "review_outline": ""}
    response = client.post("/jobs", data=form)
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    options = client.get(f"/api/jobs/{job_id}").json()["options"]
    assert (options["length"], options["tone"], options["review_outline"]) == ("long", "playful",
                                                                                False)  # fmt: skip


def test_the_form_offers_the_options_without_javascript(client):
    page = client.get("/").text
    assert '<details class="more-options">' in page and "<summary>More options</summary>" in page
    for name in ("length", "tone", "audience", "language", "review_outline"):
        assert f'name="{name}"' in page
    assert '<form method="post" action="/jobs"' in page  # a plain form post, without htmx


def test_a_finished_article_downloads_as_markdown_html_and_word(client, llm):
    job = client.post("/api/jobs", json={"topic": "Crème brûlée at home"}).json()
    assert client.get(f"/jobs/{job['id']}/article.html").status_code == 409  # not finished yet
    read_events(client, job["id"])
    article = client.get(f"/api/jobs/{job['id']}").json()["article"]
    page = client.get(f"/jobs/{job['id']}").text
    for extension in ("md", "html", "docx"):
        assert f'href="/jobs/{job["id"]}/article.{extension}" download' in page
    md = client.get(f"/jobs/{job['id']}/article.md")
    assert md.text == article + "\n"
    assert md.headers["content-disposition"] == 'attachment; filename="creme-brulee-at-home.md"'
    html = client.get(f"/jobs/{job['id']}/article.html")
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.startswith("<!doctype html>") and "<script" not in html.text
    word = client.get(f"/jobs/{job['id']}/article.docx")
    assert word.headers["content-disposition"].endswith('.docx"')
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(word.content)).paragraphs)
    assert article.splitlines()[-1].strip()[:20] in text
    assert client.get(f"/jobs/{job['id']}/article.pdf").status_code == 404
