"""Draftline: watch an LLM write an article, live. HTTP in, one call, one template out."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from urllib.parse import parse_qsl

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

import llm
import views
from config import Settings
from jobs import Job, TopicError, clean_topic, open_store
from runner import JobRunner
from streams import job_events, parse_last_event_id

settings = Settings.from_env()
templates = Jinja2Templates(env=views.environment)
log = logging.getLogger("draftline")

SUGGESTIONS = (
    "How sourdough starters work",
    "A beginner's guide to tide pools",
    "Why the sky is blue",
    "The history of the bicycle",
)
MAX_BODY_BYTES = 16 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


def render(request: Request, name: str, status_code: int = 200, **context) -> Response:
    context.setdefault("backend", llm.backend())
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def render_form(request: Request, topic: str = "", error: str = "", status_code: int = 200):
    jobs = request.app.state.store.list(limit=8)
    return render(request, "index.html", status_code, topic=topic, error=error,
                  suggestions=SUGGESTIONS, max_topic=200, jobs=jobs)  # fmt: skip


def get_job(request: Request) -> Job:
    job = request.app.state.store.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404, "There is no article with that id: it may have been deleted.")
    return job


# HTML


async def home(request: Request) -> Response:
    return render_form(request)


async def create_job(request: Request) -> Response:
    form = await read_form(request)
    raw = next((v for v in reversed(form.get("topic", [])) if v.strip()), "")  # a suggestion wins
    try:
        job = start_job(request, clean_topic(raw))
    except TopicError as exc:
        response = render_form(request, topic=raw[:200], error=str(exc), status_code=422)
        if "HX-Request" in request.headers:  # redraw just the form, message beside the field
            response = render(request, "_form.html", 422, topic=raw[:200], error=str(exc),
                              suggestions=SUGGESTIONS, max_topic=200)  # fmt: skip
            response.headers.update({"HX-Retarget": "#topic-form", "HX-Reswap": "outerHTML"})
        return response
    url = request.url_for("job_page", job_id=job.id)
    if "HX-Request" in request.headers:
        response = render(request, "_job.html", job=job)
        response.headers["HX-Push-Url"] = url.path
        return response
    return RedirectResponse(url, status_code=303)


async def job_page(request: Request) -> Response:
    job = get_job(request)
    name = "_job.html" if "HX-Request" in request.headers else "job.html"
    response = render(request, name, job=job)
    response.headers["Vary"] = "HX-Request"
    return response


async def job_events_stream(request: Request) -> Response:
    job = get_job(request)
    last_event_id = parse_last_event_id(request.headers.get("last-event-id"), job)
    return EventSourceResponse(
        job_events(request.app.state.store, job, last_event_id), ping=15, send_timeout=30
    )


async def article_markdown(request: Request) -> Response:
    job = get_job(request)
    if job.status != "done":
        raise HTTPException(409, "This article is not finished yet.")
    slug = re.sub(r"[^a-z0-9]+", "-", job.topic.lower()).strip("-")[:60] or "article"
    return Response(
        job.article + "\n",
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slug}.md"'},
    )


# JSON API


async def api_create_job(request: Request) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(await read_body(request))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("topic"), str):
        raise HTTPException(422, 'Send {"topic": "..."} with the topic as a string.')
    try:
        job = start_job(request, clean_topic(body["topic"]))
    except TopicError as exc:
        raise HTTPException(422, str(exc)) from None
    url = request.url_for("api_job", job_id=job.id)
    return JSONResponse(job.to_api(), status_code=201, headers={"Location": url.path})


async def api_job(request: Request) -> Response:
    return JSONResponse(get_job(request).to_api())


async def healthz(request: Request) -> Response:
    request.app.state.store.count()  # the store answers
    backend = llm.backend()
    return JSONResponse({"status": "ok", "backend": backend.name, "model": backend.model,
                         "llm_configured": backend.configured})  # fmt: skip


# Helpers


def start_job(request: Request, topic: str) -> Job:
    job = request.app.state.store.create(topic, client=request.client.host if request.client else "")
    request.app.state.runner.start(job)
    return job


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"The request body is too large (limit {MAX_BODY_BYTES} bytes).")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"The request body is too large (limit {MAX_BODY_BYTES} bytes).")
    return body


async def read_form(request: Request) -> dict[str, list[str]]:
    """Our one form is urlencoded; read it within the size limit, as strict UTF-8."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        raise HTTPException(415, f"Send the form as {FORM_TYPE}.")
    try:
        pairs = parse_qsl((await read_body(request)).decode(), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form is not valid UTF-8.") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


TITLES = {400: "Bad request", 404: "Not found", 405: "Not allowed", 409: "Not yet",
          413: "Too large", 415: "Wrong content type", 422: "Invalid input",
          429: "Too many requests", 500: "Something went wrong"}  # fmt: skip


async def http_error(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 500)
    message = getattr(exc, "detail", "") or TITLES.get(code, "Error")
    if code >= 500:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        message = "Something went wrong on our side. The error has been logged."
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=code)
    return render(request, "error.html", code, title=TITLES.get(code, "Error"), message=message)


routes = [
    Route("/", home),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs/{job_id}", job_page, name="job_page"),
    Route("/jobs/{job_id}/events", job_events_stream),
    Route("/jobs/{job_id}/article.md", article_markdown),
    Route("/api/jobs", api_create_job, methods=["POST"]),
    Route("/api/jobs/{job_id}", api_job, name="api_job"),
    Route("/healthz", healthz),
    Mount("/static", StaticFiles(directory=views.TEMPLATES.parent / "static"), name="static"),
]

exception_handlers = {HTTPException: http_error, Exception: http_error}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "openai"):  # one INFO line per LLM request is noise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    llm.configure(settings)
    app.state.store = open_store(settings.store_url)
    app.state.runner = JobRunner(app.state.store, settings)
    app.state.runner.interrupt_unfinished()
    yield
    await app.state.runner.shutdown()
    app.state.store.close()


app = Starlette(routes=routes, exception_handlers=exception_handlers, lifespan=lifespan)


def main() -> None:
    uvicorn.run("app:app", host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
