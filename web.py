"""HTTP plumbing shared by the route modules: rendering, finding the job, reading bodies.

Bodies are read within a size limit whatever Content-Length claims, as strict UTF-8; a client
that goes away mid-body gets 400. Route modules (app.py, steering.py) stay a few lines a handler.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from . import views
from .jobs import Job

templates = Jinja2Templates(env=views.environment)

MAX_BODY_BYTES = 16 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


def render(request: Request, name: str, status_code: int = 200, **context) -> Response:
    context.setdefault("backend", request.app.state.llm.backend)
    context.setdefault("signed_in", getattr(request.state, "signed_in", False))
    context.setdefault("prices", request.app.state.prices)  # a job's cost, where it shows
    return templates.TemplateResponse(request, name, context, status_code=status_code)


async def get_job(request: Request) -> Job:
    job = await request.app.state.store.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404, "There is no article with that id: it may have been deleted.")
    return job


def job_json(request: Request, job: Job) -> dict:
    """The job as the API shows it, with its cost at the prices Draftline was started with."""
    return job.to_api(request.app.state.prices)


def job_url(job: Job) -> str:
    return f"/jobs/{job.id}"  # a path, never built from the Host header


def back_to_job(request: Request, job: Job) -> Response:
    """After a form post about a job: its page again (303), or for htmx its fragment."""
    if "HX-Request" in request.headers:
        response = render(request, "_job.html", job=job)
        response.headers["HX-Push-Url"] = job_url(job)
        return response
    return RedirectResponse(job_url(job), status_code=303)


def last(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[-1]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 past `limit` whether or not Content-Length says so."""
    too_large = HTTPException(413, f"The request body is too large (limit {limit} bytes).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:  # gone, or dropped for sending too slowly: nobody reads the answer
        raise HTTPException(400, "The request body did not arrive.") from None
    return body


async def read_form(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, list[str]]:
    """An urlencoded form, read within the size limit, as strict UTF-8."""
    if media_type(request) != FORM_TYPE:
        raise HTTPException(415, f"Send the form as {FORM_TYPE}.")
    try:
        body = (await read_body(request, limit)).decode()
        pairs = parse_qsl(body, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form is not valid UTF-8.") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """A JSON object, read within the size limit."""
    if media_type(request) != "application/json":
        raise HTTPException(415, "Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(await read_body(request, limit))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The body is not valid JSON.") from None
    except RecursionError:  # [[[[... nested past Python's recursion limit
        raise HTTPException(400, "The body's JSON is nested too deeply.") from None
    if not isinstance(body, dict):
        raise HTTPException(422, "Send a JSON object.")
    return body
