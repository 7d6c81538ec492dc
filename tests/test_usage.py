"""What a job cost: the tokens its LLM calls used, on the page and in the API.

The API's figures are tested with the app in-process (`asgi`); what the event stream shows, with
the app under uvicorn (`client`, `start_app`)."""

from __future__ import annotations

import re

import pytest

from draftline import llm
from draftline.jobs import Job, Prices
from draftline.pocketflow_nodes import create_article_flow
from draftline.views import money
from tests.jobs_api import api, create, finished
from tests.reporting import shared_for
from tests.sse import read_events


class CountingLLM:
    """A stand-in for llm.LLM whose every call reports `tokens` (prompt, completion) through
    `on_usage`, as llm.LLM does when the server sends usage."""

    backend = llm.Backend("openai", "gpt", "https://example.invalid/v1", True)

    def __init__(self, tokens: tuple[int, int] = (100, 20)):
        self.tokens = tokens
        self.calls: list[str] = []

    async def complete(self, messages, max_tokens, on_usage=None, **extra):
        self.calls.append("outline")
        await self._used(on_usage)
        return llm.Reply("- One\n- Two\n- Three")

    async def stream(self, messages, max_tokens, on_usage=None, **extra):
        self.calls.append("style" if "editor" in messages[0]["content"] else "section")
        for word in ("Hello ", "there."):
            yield word
        await self._used(on_usage)

    async def _used(self, on_usage) -> None:
        if on_usage is not None and self.tokens:
            await on_usage(*self.tokens)


# The reporter's accounting


@pytest.mark.anyio
async def test_every_call_of_a_job_adds_its_tokens_to_the_jobs_usage():
    model = CountingLLM((100, 20))
    shared = await shared_for(model)
    await create_article_flow(retries=1).run_async(shared)
    assert model.calls == ["outline", "section", "section", "section", "style"]
    job, store = shared["job"], shared["report"].store
    assert job.tokens == {"prompt_tokens": 500, "completion_tokens": 100}
    assert (await store.get(job.id)).usage == job.usage  # saved with the job


@pytest.mark.anyio
async def test_usage_adds_to_what_earlier_runs_of_the_job_used():
    shared = await shared_for(CountingLLM((10, 5)),
                              usage={"prompt_tokens": 1000, "completion_tokens": 300})  # fmt: skip
    await shared["report"].usage(10, 5)
    assert shared["job"].tokens == {"prompt_tokens": 1010, "completion_tokens": 305}


@pytest.mark.anyio
async def test_a_usage_report_is_published_to_the_jobs_viewers():
    shared = await shared_for(CountingLLM())
    report, job = shared["report"], shared["job"]
    await report.usage(1234, 2345)
    (event,) = await report.store.events_after(job.id, 0)
    assert event.key == "job" and '"prompt_tokens": 1234' in event.data


@pytest.mark.anyio
async def test_a_server_that_reports_no_usage_leaves_the_job_at_zero():
    shared = await shared_for(CountingLLM(tokens=()))
    await create_article_flow(retries=1).run_async(shared)
    assert shared["job"].tokens == {"prompt_tokens": 0, "completion_tokens": 0}
    assert shared["job"].article == "Hello there."


# End to end: the real app, the real openai client, the fake LLM's usage chunks


def reported(fake) -> dict[str, int]:
    """What the fake LLM reported, summed over its calls."""
    counts = [call.usage for call in fake.calls if call.usage]
    return {"prompt_tokens": sum(p for p, _ in counts),
            "completion_tokens": sum(c for _, c in counts)}  # fmt: skip


def test_a_jobs_usage_in_the_api_is_the_sum_the_server_reported(asgi, llm):
    job = create(asgi)
    assert job["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    finished(asgi, job["id"])
    final = api(asgi, job["id"])
    assert final["status"] == "done"
    assert len(llm.calls) == 5 and all(call.usage for call in llm.calls)  # streams included
    assert final["usage"] == reported(llm)
    assert final["usage"]["prompt_tokens"] > 100 and final["usage"]["completion_tokens"] > 100


def test_writing_a_section_again_adds_to_the_jobs_usage(asgi, llm):
    job = create(asgi)
    finished(asgi, job["id"])
    first = api(asgi, job["id"])["usage"]
    answer = asgi.post(f"/api/jobs/{job['id']}/sections/2/regenerate", json={})
    assert answer.status_code == 202
    finished(asgi, job["id"])
    again = api(asgi, job["id"])
    assert [c.kind for c in llm.calls][-2:] == ["section", "style"]
    assert again["status"] == "done" and again["usage"] == reported(llm)
    assert again["usage"]["completion_tokens"] > first["completion_tokens"]


def test_the_job_page_and_its_events_show_the_tokens_used(client, llm):
    job = create(client)
    events = read_events(client, job["id"])
    used = api(client, job["id"])["usage"]
    shown = f"{used['prompt_tokens']:,} tokens in, {used['completion_tokens']:,} out"
    assert 'id="usage"' in events[0].data  # the snapshot has the part, hidden while empty
    assert shown in events[-1].data  # ... and the `done` event draws it
    growing = [e.data for e in events if 'id="usage"' in e.data and "tokens in" in e.data]
    assert len(growing) >= 2  # it grows while the job runs
    page = client.get(f"/jobs/{job['id']}").text
    assert f'<p id="usage" class="usage">{shown}</p>' in page


def test_a_server_that_sends_no_usage_gives_zeros_and_no_error(asgi, llm):
    llm.reports_usage = False
    job = create(asgi)
    finished(asgi, job["id"])
    final = api(asgi, job["id"])
    assert final["status"] == "done" and final["error"] is None
    assert final["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    page = asgi.get(f"/jobs/{job['id']}").text
    assert '<p id="usage" class="usage is-empty">No tokens counted yet</p>' in page
    assert "tokens in" not in page


# Prices: an estimated cost, worked out where it is shown


def test_a_cost_is_worked_out_from_the_prices_per_thousand_tokens():
    job = Job("abc12345", "Tides", usage={"prompt_tokens": 1234, "completion_tokens": 2345})
    assert "cost" not in job.to_api()["usage"] and job.cost(Prices()) is None
    prices = Prices(input=0.00015, output=0.0006)  # gpt-4o-mini's, per 1,000 tokens
    assert job.to_api(prices)["usage"] == {"prompt_tokens": 1234, "completion_tokens": 2345,
                                           "cost": 0.001592}  # fmt: skip
    assert job.cost(Prices(output=2.0)) == pytest.approx(4.69)  # an unset price counts as free
    assert "cost" not in job.to_record()["usage"]  # never stored


@pytest.mark.parametrize(("cost", "shown"), [
    (0.0, "0.00"), (0.00046, "0.00046"), (0.0015921, "0.00159"), (0.0123, "0.0123"),
    (0.5, "0.50"), (0.9996, "1.00"), (1234.5, "1,234.50"),
])  # fmt: skip
def test_a_cost_is_shown_to_three_significant_digits_and_at_least_two_decimals(cost, shown):
    assert money(cost) == shown


def test_with_prices_set_the_page_events_and_api_show_the_estimated_cost(start_app, llm):
    server = start_app(DRAFTLINE_PRICE_PER_1K_INPUT="0.5", DRAFTLINE_PRICE_PER_1K_OUTPUT="1.5")
    with server.client() as client:
        job = create(client)
        assert job["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
        events = read_events(client, job["id"])
        final = api(client, job["id"])
        listed = client.get("/api/jobs").json()["jobs"][0]
        page = client.get(f"/jobs/{job['id']}").text
    used = reported(llm)
    cost = (used["prompt_tokens"] * 0.5 + used["completion_tokens"] * 1.5) / 1000
    assert final["usage"] == listed["usage"] == {**used, "cost": round(cost, 6)}
    shown = (f"{used['prompt_tokens']:,} tokens in, {used['completion_tokens']:,} out"
             f" · estimated cost {money(cost)}")  # fmt: skip
    assert shown in page and shown in events[-1].data


# A token budget: DRAFTLINE_MAX_TOKENS_PER_JOB


@pytest.mark.anyio
async def test_a_job_that_goes_past_its_budget_fails_with_a_message_and_is_not_retried():
    model = CountingLLM((100, 20))  # the outline and the first section: 240 tokens
    shared = await shared_for(model, budget=250)
    with pytest.raises(llm.LLMError) as failed:
        await create_article_flow(concurrency=1, retries=3, wait=0).run_async(shared)
    assert str(failed.value) == ("This article used 360 tokens, more than "
                                 "DRAFTLINE_MAX_TOKENS_PER_JOB (250) allows. What was written "
                                 "is kept.")  # fmt: skip
    assert failed.value.transient is False
    assert model.calls == ["outline", "section", "section"]  # none again, no third section
    job = shared["job"]
    assert job.outline == ["One", "Two", "Three"] and job.sections[0]["done"]
    assert job.sections[1]["text"] == "Hello there."  # written, though it went past the budget
    assert job.tokens == {"prompt_tokens": 300, "completion_tokens": 60}


@pytest.mark.anyio
async def test_no_call_starts_once_the_budget_is_spent():
    model = CountingLLM()
    shared = await shared_for(model, budget=5000, outline=["One"],
                              sections=[{"title": "One", "text": "", "done": False}],
                              usage={"prompt_tokens": 4000, "completion_tokens": 1000})  # fmt: skip
    with pytest.raises(llm.LLMError, match=r"^This article used 5,000 tokens, all that "
                                           r"DRAFTLINE_MAX_TOKENS_PER_JOB \(5,000\) allows\."):
        await create_article_flow(retries=3, wait=0).run_async(shared)
    assert model.calls == []


@pytest.mark.anyio
async def test_a_job_within_its_budget_runs_as_usual():
    shared = await shared_for(CountingLLM((100, 20)), budget=600)  # five calls: exactly 600
    await create_article_flow(retries=1).run_async(shared)
    assert shared["job"].article == "Hello there."


BUDGET_MESSAGE = (r"This article used [\d,]+ tokens, more than DRAFTLINE_MAX_TOKENS_PER_JOB "
                  r"\(200\) allows\. What was written is kept\.")  # fmt: skip


def test_a_small_token_budget_fails_the_job_keeping_what_was_written(start_app, llm):
    """The fake's outline uses 54 tokens and each section about 100 to 120: the job fails when
    the second section to finish takes it past 200."""
    server = start_app(DRAFTLINE_MAX_TOKENS_PER_JOB="200")
    with server.client() as client:
        job = create(client)
        events = read_events(client, job["id"])
        failed = api(client, job["id"])
        assert failed["status"] == "failed" and re.fullmatch(BUDGET_MESSAGE, failed["error"])
        assert sum(failed["usage"].values()) > 200
        assert failed["outline"] and sum(bool(s["text"]) for s in failed["sections"]) >= 2
        page = client.get(f"/jobs/{job['id']}").text
        assert failed["error"] in page and failed["error"] in events[-1].data
        assert failed["sections"][0]["text"][:40] in page
        assert "Retry" in page

        calls = len(llm.calls)
        assert client.post(f"/api/jobs/{job['id']}/resume").status_code == 202
        read_events(client, job["id"])
        again = api(client, job["id"])
    assert again["status"] == "failed" and again["error"] == failed["error"]  # at once
    assert len(llm.calls) == calls and again["usage"] == failed["usage"]  # paying nothing more
