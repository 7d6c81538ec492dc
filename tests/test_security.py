"""The app as an attacker meets it: forged requests from other sites, forged hosts, no password.

Most of it is decided inside the app, so most tests build it in-process (`asgi`); the ones about
a live event stream or the server's own process and log run it under uvicorn."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from urllib.parse import urlencode

import httpx
import pytest
from starlette.routing import Route

from tests.app_server import ROOT
from tests.fake_llm import free_port
from tests.in_process import another_client
from tests.jobs_api import api, create, finished
from tests.sse import iter_events, read_events


def write_routes() -> list[tuple[str, str]]:
    """Every state-changing (method, path) the app serves, so a new route cannot be forgotten."""
    from draftline.app import routes

    return sorted(
        (method, route.path)
        for route in routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"GET", "HEAD"}
    )


def test_every_state_changing_route_is_known_here():
    assert {path for _, path in write_routes()} >= {
        "/jobs", "/jobs/{job_id}/cancel", "/jobs/{job_id}/resume", "/jobs/{job_id}/delete",
        "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/resume",
    }  # fmt: skip


FORGED = [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site"},  # another port or subdomain of the same site
    {"Sec-Fetch-Site": "cross-site"},  # a browser that leaves Origin out
    {"Origin": "https://evil.example"},  # plain http on a LAN: no Sec-Fetch-*, only Origin
    {"Origin": "null"},  # a sandboxed frame or a redirect chain
]


@pytest.mark.parametrize("headers", FORGED, ids=lambda h: " ".join(h.values()))
def test_cross_site_writes_are_refused_on_every_state_changing_route(asgi, headers):
    job = create(asgi)["id"]
    finished(asgi, job)
    origin_as_self = {"Origin": str(asgi.base_url).replace("127.0.0.1", "localhost")}
    for method, path in write_routes():
        for forged in (headers, origin_as_self):
            response = asgi.request(
                method, path.replace("{job_id}", job), headers=forged,
                data={"topic": "Forged", "password": "x"} if not path.startswith("/api/") else None,
                json={"topic": "Forged"} if path == "/api/jobs" else None,
            )  # fmt: skip
            assert response.status_code == 403, (method, path, forged, response.text)
            if path.startswith("/api/"):
                assert "another site" in response.json()["error"]
            else:
                assert "another site" in response.text and "<html" in response.text
    listing = asgi.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listing] == [job] and api(asgi, job)["status"] == "done"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin", "Origin": "{url}"}, {"Sec-Fetch-Site": "none"},
     {"Origin": "{url}"}],
    ids=["curl", "same-origin", "typed", "origin only"],
)  # fmt: skip
def test_same_origin_and_plain_client_writes_still_work(asgi, headers):
    headers = {k: v.replace("{url}", str(asgi.base_url)) for k, v in headers.items()}
    created = asgi.post("/jobs", data={"topic": "Tide pools"}, headers=headers)
    assert created.status_code == 303, created.text
    job = created.headers["location"].rsplit("/", 1)[1]
    assert asgi.post(f"/api/jobs/{job}/cancel", headers=headers).status_code in (200, 409)
    assert asgi.delete(f"/api/jobs/{job}", headers=headers).status_code == 204


# DNS rebinding: a page whose name now points at 127.0.0.1 sends its own name as Host.


@pytest.mark.parametrize("host", ["rebind.attacker.example", "evil.example:8000",
                                  "127.0.0.1.nip.io", "[::2]", "localhost.", ""])  # fmt: skip
def test_requests_for_unknown_hosts_are_refused(asgi, host):
    for path in ("/", "/jobs", "/api/jobs", "/healthz", "/static/draftline.css"):
        response = asgi.get(path, headers={"Host": host})
        assert response.status_code == 400, (path, response.text)
        assert "Draftline" not in response.text
    refused = asgi.post("/api/jobs", json={"topic": "Rebound"}, headers={"Host": host})
    assert refused.status_code == 400 and asgi.get("/api/jobs").json()["jobs"] == []


def test_loopback_names_and_allowed_hosts_are_served(start_asgi, llm):
    http = start_asgi(allowed_hosts="draftline.lan, *.example.org,192.168.1.20")  # as if from env
    port = http.base_url.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "draftline.lan",
                 "Draftline.LAN:8080", "writer.example.org", "192.168.1.20:80"):  # fmt: skip
        assert http.get("/", headers={"Host": host}).status_code == 200, host
    for host in ("example.org", "draftline.lan.attacker.example", "192.168.1.21"):
        assert http.get("/", headers={"Host": host}).status_code == 400, host


def test_links_and_redirects_never_carry_the_host_they_were_asked_for(asgi, llm):
    llm.token_delay = 0.02  # still running when it is cancelled
    host = {"Host": f"localhost:{asgi.base_url.port}"}  # served, yet not the name the links use
    created = asgi.post("/jobs", data={"topic": "Tide pools"}, headers=host)
    assert created.status_code == 303 and created.headers["location"].startswith("/jobs/")
    job = created.headers["location"].rsplit("/", 1)[1]
    api_created = asgi.post("/api/jobs", json={"topic": "Rock pools"}, headers=host)
    assert api_created.headers["location"] == f"/api/jobs/{api_created.json()['id']}"
    cancelled = asgi.post(f"/jobs/{job}/cancel", headers=host)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/jobs/{job}"
    resumed = asgi.post(f"/jobs/{job}/resume", headers=host)
    assert resumed.status_code == 303 and resumed.headers["location"] == f"/jobs/{job}"
    finished(asgi, job)
    for path in ("/", "/jobs", f"/jobs/{job}", "/no-such-page"):
        page = asgi.get(path, headers=host).text
        links = re.findall(r'\b(?:href|src|action|sse-connect)="([^"]*)"', page)
        assert len(links) > 5 and all(re.match(r"(/(?!/)|#|data:)", link) for link in links), links
        assert "localhost" not in page, path
    deleted = asgi.post(f"/jobs/{job}/delete", headers=host)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/jobs"


# DRAFTLINE_PASSWORD

PASSWORD = "correct horse battery staple"
BEARER = {"Authorization": f"Bearer {PASSWORD}"}


def test_with_a_password_only_health_and_static_files_are_open(start_asgi, llm):
    http = start_asgi(password=PASSWORD)
    assert http.get("/healthz").status_code == 200
    assert http.get("/static/draftline.css").status_code == 200
    for method, path in [("GET", "/api/jobs"), ("POST", "/api/jobs"),
                         ("GET", "/api/jobs/abcdefgh1"), ("DELETE", "/api/jobs/abcdefgh1"),
                         ("POST", "/api/jobs/abcdefgh1/cancel")]:  # fmt: skip
        refused = http.request(method, path, json={"topic": "Sneaky"})
        assert refused.status_code == 401, (method, path)
        assert "Bearer" in refused.json()["error"]
        assert "Bearer" in refused.headers["www-authenticate"]
    for path in ("/", "/jobs", "/jobs/abcdefgh1?x=1"):  # pages ask for the password
        asked = http.get(path)
        assert asked.status_code == 303, path
        assert asked.headers["location"] == "/login?" + urlencode({"next": path})
    stream = http.get("/jobs/abcdefgh1/events", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 401
    assert http.post("/jobs", data={"topic": "Sneaky"}).status_code == 401
    htmx = http.post("/jobs", data={"topic": "Sneaky"}, headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"
    wrong = http.get("/api/jobs", headers={"Authorization": "Bearer correct horse"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "That is not the password."

    job = http.post("/api/jobs", json={"topic": "Tide pools"}, headers=BEARER)
    assert job.status_code == 201
    with another_client(http, headers=BEARER) as script:  # the password on every request
        finished(script, job.json()["id"])
        stream = script.get(f"/jobs/{job.json()['id']}/events")  # a finished job's: it ends
        assert stream.status_code == 200 and list(iter_events(stream))[-1].name == "done"
        assert [j["topic"] for j in script.get("/api/jobs").json()["jobs"]] == ["Tide pools"]
        assert "Tide pools" in script.get("/").text


def test_the_login_form_sets_a_signed_httponly_samesite_session(start_asgi, llm):
    http = start_asgi(password=PASSWORD)
    form = http.get("/login?next=/jobs")
    assert form.status_code == 200 and 'type="password"' in form.text
    assert 'name="next" value="/jobs"' in form.text
    wrong = http.post("/login", data={"password": "wrong", "next": "/jobs"})
    assert wrong.status_code == 401 and "not the password" in wrong.text
    assert "draftline_session" not in http.cookies

    signed_in = http.post("/login", data={"password": PASSWORD, "next": "/jobs"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/jobs"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("draftline_session=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    home = http.get("/")
    assert home.status_code == 200 and "Sign out</button>" in home.text
    assert http.post("/jobs", data={"topic": "Tide pools"}).status_code == 303
    assert http.get("/api/jobs").status_code == 200  # the session works for the API too

    session = http.cookies["draftline_session"]
    signed, _, signature = session.rpartition(".")  # "in.<time>.<signature>"
    forgeries = (f"{signed}.{signature[::-1]}", "out." + session.partition(".")[2], "in")
    with another_client(http) as bare:  # an empty cookie jar: exactly the cookie given
        for cookie in (*forgeries, session):
            seen = bare.get("/", headers={"Cookie": f"draftline_session={cookie}"})
            assert seen.status_code == (200 if cookie == session else 303), cookie
    assert http.post("/logout").status_code == 303
    assert http.get("/").status_code == 303  # signed out

    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "jobs"):
        away = http.post("/login", data={"password": PASSWORD, "next": target})
        assert away.headers["location"] == "/", target  # never sent to another site


def test_wrong_passwords_are_rate_limited_per_address(start_asgi, llm):
    http = start_asgi(password=PASSWORD)
    for attempt in range(10):
        wrong = {"Authorization": f"Bearer guess {attempt}"}
        refused = http.get("/api/jobs", headers=wrong) if attempt % 2 else \
            http.post("/login", data={"password": f"guess {attempt}"})  # fmt: skip
        assert refused.status_code == 401, attempt
    assert http.get("/api/jobs", headers=BEARER).status_code == 429  # even the right one waits
    locked = http.post("/login", data={"password": PASSWORD})
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
    with another_client(http, "127.0.0.2") as other:  # another machine, as far as it knows
        assert other.get("/api/jobs", headers=BEARER).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_draftline_will_not_listen_beyond_loopback_without_a_password(tmp_path, host):
    port = free_port()
    env = {**os.environ, "DRAFTLINE_HOST": host, "DRAFTLINE_PORT": str(port),
           "DRAFTLINE_STORE": f"sqlite:///{tmp_path / 'd.db'}",
           "DRAFTLINE_LOCAL_MODEL": "off"}  # fmt: skip
    env.pop("DRAFTLINE_PASSWORD", None)
    done = subprocess.run([sys.executable, "-m", "draftline"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "not starting" in done.stderr and "DRAFTLINE_PASSWORD" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# Security headers


def csp_directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: " ".join(d.split()[1:]) for d in policy.split(";") if d.strip()}


def test_every_response_carries_a_strict_csp_and_the_other_security_headers(asgi, llm):
    job = create(asgi)["id"]
    finished(asgi, job)
    responses = [
        asgi.get("/"), asgi.get(f"/jobs/{job}"), asgi.get(f"/jobs/{job}/events"),  # it ends
        asgi.get(f"/jobs/{job}/article.md"), asgi.get("/static/draftline.css"),
        asgi.get("/api/jobs"), asgi.get("/healthz"), asgi.get("/no-such-page"),
        asgi.get("/", headers={"Host": "evil.example"}),
        asgi.post("/jobs", data={"topic": "x"}, headers={"Sec-Fetch-Site": "cross-site"}),
    ]  # fmt: skip
    for response in responses:
        where = f"{response.request.method} {response.request.url} {response.status_code}"
        csp = csp_directives(response)
        assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'", where
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'", where
        assert csp["form-action"] == "'self'" and csp["img-src"] == "'self' data:", where
        assert "unsafe" not in response.headers["content-security-policy"], where
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "same-origin", where
        assert response.headers["x-frame-options"] == "DENY", where


def test_pages_need_nothing_inline_that_the_csp_would_refuse(asgi, llm):
    job = create(asgi)["id"]
    finished(asgi, job)
    for path in ("/", "/jobs", f"/jobs/{job}", "/no-such-page"):
        page = asgi.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", page), path
        assert '"includeIndicatorStyles":false' in page  # htmx would inject a <style> otherwise


# What viewers are shown


def test_errors_shown_to_viewers_never_carry_the_llm_address_or_key(start_app, llm):
    port = free_port()  # nothing listens there: every call fails to connect
    server = start_app(OPENAI_BASE_URL=f"http://draftline:s3cret-pass@127.0.0.1:{port}/v1",
                       OPENAI_API_KEY="sk-s3cret-key")  # fmt: skip
    with server.client() as http:
        job = create(http)["id"]
        events = read_events(http, job)
        failed = api(http, job)
        pages = [http.get(path).text for path in (f"/jobs/{job}", "/", "/jobs", "/healthz")]
        shown = [failed["error"], *pages, *(event.data for event in events)]
    assert failed["status"] == "failed" and failed["error"] == "Lost the connection to the LLM."
    for text in shown:
        assert "s3cret" not in text and f"127.0.0.1:{port}" not in text
    assert f"the LLM at http://127.0.0.1:{port}/v1" in server.log()  # the owner can still tell
    assert "s3cret" not in server.log()


def test_topics_with_bidi_overrides_are_refused_where_they_are_typed(asgi):
    spoof = "Quarterly report \u202egnp.exe"  # would display as "Quarterly report exe.png"
    refused = asgi.post("/api/jobs", json={"topic": spoof})
    assert refused.status_code == 422 and "invisible formatting" in refused.json()["error"]
    form = asgi.post("/jobs", data={"topic": spoof})
    assert form.status_code == 422 and 'id="topic-error"' in form.text
    assert asgi.get("/api/jobs").json()["jobs"] == []


DEEP_TOPIC = b'{"topic": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001  # 14 KB, under the limit


@pytest.mark.parametrize("body", [b"[" * 8000, b"[" * 8000 + b"]" * 8000, DEEP_TOPIC])
def test_a_json_nesting_bomb_is_a_bad_request_not_a_crash(asgi, caplog, body):
    caplog.set_level(logging.INFO)  # all that the real server's log would hold
    response = asgi.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]
    assert asgi.get("/healthz").status_code == 200
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
