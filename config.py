"""Settings, read once from the environment at start-up (pydantic-settings).

Each field below is one environment variable: `DRAFTLINE_` and the field's name in capitals, or
the alias it names (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `DRAFTLINE_STORE`). Its default is
written here and nowhere else; README.md lists every variable with it, and tests/test_docs.py
checks that from this model. A value that breaks a field's constraint is refused at start, with
the variable's name; an empty one means the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "DRAFTLINE_"

Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # per 1,000 tokens, any currency


class SettingsError(ValueError):
    """Settings the environment gives that Draftline refuses; the message names each variable."""


class Settings(BaseSettings):
    """Everything an operator can set, in the order README lists it."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        populate_by_name=True,  # Settings(store_url=...) as well as DRAFTLINE_STORE
        str_strip_whitespace=True,
    )

    openai_api_key: str = Field("", validation_alias="OPENAI_API_KEY", repr=False)
    openai_base_url: str = Field("", validation_alias="OPENAI_BASE_URL")
    model: str = "gpt-4o-mini"
    local_model: str = "auto"  # "auto", "off" or the path of a .gguf file
    local_threads: Annotated[int, Field(ge=0)] = 0  # 0: one per CPU core
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    password: str = Field("", repr=False)  # set: every route but /healthz and static files ask
    # Host names served besides the loopback ones, separated by commas or spaces (not JSON).
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    store_url: str = Field("sqlite:///data/draftline.db", validation_alias="DRAFTLINE_STORE")
    section_concurrency: Count = 5
    llm_timeout: Seconds = 60.0
    llm_retries: Count = 3
    llm_retry_wait: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    job_deadline: Seconds = 600.0
    max_tokens_per_job: Count | None = None  # prompt + completion tokens; unset: no limit
    # Unset: no cost is shown. Set either: the job page and the API estimate a job's cost.
    price_per_1k_input: Price | None = None
    price_per_1k_output: Price | None = None
    max_running_jobs: Count = 4
    max_waiting_per_client: Count = 50
    jobs_per_minute: Count = 30  # per client, started or resumed; a burst may use them at once
    max_streams_per_client: Count = 100  # open event streams (live pages) per client
    max_streams: Count = 1000  # ... and from everyone together
    read_timeout: Seconds = 10.0  # seconds for a request's headers and body to arrive
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, **_files):
        """Arguments, then the environment; no .env or secrets files."""
        return init_settings, env_settings

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, values: Any) -> Any:
        """`DRAFTLINE_PORT=` (or only spaces) is the default, as if it were not set."""
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def store_is_shared(self) -> bool:
        return is_shared_store(self.store_url)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the environment gives, or SettingsError naming each variable that is
        wrong, e.g. `DRAFTLINE_PORT: Input should be a valid integer, unable to parse string as
        an integer (got 'abc')`."""
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError("\n".join(map(_explain, exc.errors()))) from None


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else PREFIX + field.upper()


def variables() -> dict[str, Any]:
    """Every environment variable and its default, in the model's (and README's) order."""
    return {env_name(name): field.default for name, field in Settings.model_fields.items()}


def _explain(error: Any) -> str:
    """One line per refused value: the variable (a field's alias is its name), what is wrong."""
    where = str(error["loc"][0]) if error["loc"] else ""
    name = env_name(where) if where in Settings.model_fields else where
    return f"{name}: {error['msg']} (got {error['input']!r})"


def is_shared_store(store_url: str) -> bool:
    """Redis (`redis://`, `rediss://`): any number of processes may share it; SQLite serves one."""
    return store_url.startswith(("redis://", "rediss://"))


def sqlite_path(store_url: str) -> Path:
    """`sqlite:///data/x.db` is relative to the working directory; `sqlite:////abs/x.db` is not."""
    prefix = "sqlite:///"
    if not store_url.startswith(prefix):
        raise ValueError("DRAFTLINE_STORE must be sqlite:///path.db or redis://host:6379/0, "
                         f"got {store_url!r}")
    return Path(store_url[len(prefix):])
