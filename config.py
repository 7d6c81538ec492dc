"""Settings, read once from the environment at start-up.

Every variable is listed in README.md; tests/test_docs.py checks that it stays so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The documented variables and their defaults, in the order README lists them.
DEFAULTS: dict[str, str] = {
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "DRAFTLINE_MODEL": "gpt-4o-mini",
    "DRAFTLINE_LOCAL_MODEL": "auto",
    "DRAFTLINE_LOCAL_THREADS": "0",
    "DRAFTLINE_HOST": "127.0.0.1",
    "DRAFTLINE_PORT": "8000",
    "DRAFTLINE_PASSWORD": "",
    "DRAFTLINE_ALLOWED_HOSTS": "",
    "DRAFTLINE_STORE": "sqlite:///data/draftline.db",
    "DRAFTLINE_SECTION_CONCURRENCY": "5",
    "DRAFTLINE_LLM_TIMEOUT": "60",
    "DRAFTLINE_LLM_RETRIES": "3",
    "DRAFTLINE_LLM_RETRY_WAIT": "1",
    "DRAFTLINE_JOB_DEADLINE": "600",
    "DRAFTLINE_MAX_RUNNING_JOBS": "4",
    "DRAFTLINE_MAX_WAITING_PER_CLIENT": "50",
    "DRAFTLINE_JOBS_PER_MINUTE": "30",
    "DRAFTLINE_MAX_STREAMS_PER_CLIENT": "100",
    "DRAFTLINE_MAX_STREAMS": "1000",
    "DRAFTLINE_READ_TIMEOUT": "10",
    "DRAFTLINE_LOG_LEVEL": "info",
}


def _get(environ: dict[str, str], name: str) -> str:
    return environ.get(name, "").strip() or DEFAULTS[name]


@dataclass(frozen=True)
class Settings:
    openai_api_key: str = ""
    openai_base_url: str = ""
    model: str = DEFAULTS["DRAFTLINE_MODEL"]
    local_model: str = DEFAULTS["DRAFTLINE_LOCAL_MODEL"]  # "auto", "off" or a .gguf path
    local_threads: int = 0  # 0: one per CPU core
    host: str = DEFAULTS["DRAFTLINE_HOST"]
    port: int = int(DEFAULTS["DRAFTLINE_PORT"])
    password: str = ""  # set: every route but /healthz and static files asks for it
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the loopback ones
    store_url: str = DEFAULTS["DRAFTLINE_STORE"]
    section_concurrency: int = 5
    llm_timeout: float = 60.0
    llm_retries: int = 3
    llm_retry_wait: float = 1.0
    job_deadline: float = 600.0
    max_running_jobs: int = 4
    max_waiting_per_client: int = 50
    jobs_per_minute: int = 30  # per client, started or resumed; a burst may use them at once
    max_streams_per_client: int = 100  # open event streams (live pages) per client
    max_streams: int = 1000  # ... and from everyone together
    read_timeout: float = 10.0  # seconds for a request's headers and body to arrive
    log_level: str = "info"

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        return cls(
            openai_api_key=_get(env, "OPENAI_API_KEY"),
            openai_base_url=_get(env, "OPENAI_BASE_URL"),
            model=_get(env, "DRAFTLINE_MODEL"),
            local_model=_get(env, "DRAFTLINE_LOCAL_MODEL"),
            local_threads=max(0, int(_get(env, "DRAFTLINE_LOCAL_THREADS"))),
            host=_get(env, "DRAFTLINE_HOST"),
            port=int(_get(env, "DRAFTLINE_PORT")),
            password=_get(env, "DRAFTLINE_PASSWORD"),
            allowed_hosts=tuple(_get(env, "DRAFTLINE_ALLOWED_HOSTS").replace(",", " ").split()),
            store_url=_get(env, "DRAFTLINE_STORE"),
            section_concurrency=max(1, int(_get(env, "DRAFTLINE_SECTION_CONCURRENCY"))),
            llm_timeout=float(_get(env, "DRAFTLINE_LLM_TIMEOUT")),
            llm_retries=max(1, int(_get(env, "DRAFTLINE_LLM_RETRIES"))),
            llm_retry_wait=float(_get(env, "DRAFTLINE_LLM_RETRY_WAIT")),
            job_deadline=float(_get(env, "DRAFTLINE_JOB_DEADLINE")),
            max_running_jobs=max(1, int(_get(env, "DRAFTLINE_MAX_RUNNING_JOBS"))),
            max_waiting_per_client=max(1, int(_get(env, "DRAFTLINE_MAX_WAITING_PER_CLIENT"))),
            jobs_per_minute=max(1, int(_get(env, "DRAFTLINE_JOBS_PER_MINUTE"))),
            max_streams_per_client=max(1, int(_get(env, "DRAFTLINE_MAX_STREAMS_PER_CLIENT"))),
            max_streams=max(1, int(_get(env, "DRAFTLINE_MAX_STREAMS"))),
            read_timeout=max(0.1, float(_get(env, "DRAFTLINE_READ_TIMEOUT"))),
            log_level=_get(env, "DRAFTLINE_LOG_LEVEL").lower(),
        )


def sqlite_path(store_url: str) -> Path:
    """`sqlite:///data/x.db` is relative to the working directory, `sqlite:////abs/x.db` absolute."""
    prefix = "sqlite:///"
    if not store_url.startswith(prefix):
        raise ValueError(f"DRAFTLINE_STORE must start with {prefix!r}, got {store_url!r}")
    return Path(store_url[len(prefix):])
