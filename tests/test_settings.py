"""Settings come from the environment, once, and a bad value stops Draftline before it starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from draftline.config import Settings, SettingsError, env_name, variables

# Operators' scripts set these names: they never change.
NAMES = [
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "DRAFTLINE_MODEL", "DRAFTLINE_LOCAL_MODEL",
    "DRAFTLINE_LOCAL_THREADS", "DRAFTLINE_HOST", "DRAFTLINE_PORT", "DRAFTLINE_PASSWORD",
    "DRAFTLINE_ALLOWED_HOSTS", "DRAFTLINE_STORE", "DRAFTLINE_SECTION_CONCURRENCY",
    "DRAFTLINE_LLM_TIMEOUT", "DRAFTLINE_LLM_RETRIES", "DRAFTLINE_LLM_RETRY_WAIT",
    "DRAFTLINE_JOB_DEADLINE", "DRAFTLINE_MAX_TOKENS_PER_JOB", "DRAFTLINE_PRICE_PER_1K_INPUT",
    "DRAFTLINE_PRICE_PER_1K_OUTPUT", "DRAFTLINE_MAX_RUNNING_JOBS", "DRAFTLINE_MAX_WAITING_PER_CLIENT",
    "DRAFTLINE_JOBS_PER_MINUTE", "DRAFTLINE_MAX_STREAMS_PER_CLIENT", "DRAFTLINE_MAX_STREAMS",
    "DRAFTLINE_READ_TIMEOUT", "DRAFTLINE_LOG_LEVEL",
]  # fmt: skip


def test_the_variables_keep_their_names():
    assert list(variables()) == NAMES


def test_values_are_read_from_the_environment(monkeypatch):
    for name, value in {"OPENAI_BASE_URL": "http://localhost:11434/v1", "DRAFTLINE_PORT": " 8080",
                        "DRAFTLINE_STORE": "sqlite:////srv/d.db", "DRAFTLINE_LLM_TIMEOUT": "2.5",
                        "DRAFTLINE_LOG_LEVEL": "DEBUG", "DRAFTLINE_LOCAL_THREADS": "3"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.openai_base_url == "http://localhost:11434/v1" and settings.llm_configured
    assert (settings.port, settings.store_url) == (8080, "sqlite:////srv/d.db")
    assert (settings.llm_timeout, settings.log_level, settings.local_threads) == (2.5, "debug", 3)


@pytest.mark.parametrize("value", ["", "   "])
@pytest.mark.parametrize("name", NAMES)
def test_a_blank_variable_means_its_default(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    defaults = {field: info.default for field, info in Settings.model_fields.items()}
    assert Settings.from_env().model_dump() == defaults


def test_allowed_hosts_are_separated_by_commas_or_spaces(monkeypatch):
    monkeypatch.setenv("DRAFTLINE_ALLOWED_HOSTS", "draftline.lan, 192.168.1.20 *.example.org,")
    hosts = Settings.from_env().allowed_hosts
    assert hosts == ("draftline.lan", "192.168.1.20", "*.example.org")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DRAFTLINE_PORT", "abc", "Input should be a valid integer, unable to parse string as an "
                                  "integer (got 'abc')"),
        ("DRAFTLINE_PORT", "70000", "Input should be less than or equal to 65535 (got '70000')"),
        ("DRAFTLINE_PORT", "0", "Input should be greater than or equal to 1 (got '0')"),
        ("DRAFTLINE_LOCAL_THREADS", "-2", "Input should be greater than or equal to 0"),
        ("DRAFTLINE_SECTION_CONCURRENCY", "0", "Input should be greater than or equal to 1"),
        ("DRAFTLINE_LLM_RETRIES", "three", "Input should be a valid integer"),
        ("DRAFTLINE_LLM_TIMEOUT", "0", "Input should be greater than 0 (got '0')"),
        ("DRAFTLINE_LLM_RETRY_WAIT", "-1", "Input should be greater than or equal to 0"),
        ("DRAFTLINE_JOB_DEADLINE", "inf", "Input should be a finite number (got 'inf')"),
        ("DRAFTLINE_MAX_TOKENS_PER_JOB", "0", "Input should be greater than or equal to 1"),
        ("DRAFTLINE_MAX_TOKENS_PER_JOB", "5k", "Input should be a valid integer"),
        ("DRAFTLINE_PRICE_PER_1K_INPUT", "-0.1", "Input should be greater than or equal to 0"),
        ("DRAFTLINE_PRICE_PER_1K_OUTPUT", "$0.60", "Input should be a valid number"),
        ("DRAFTLINE_MAX_RUNNING_JOBS", "-4", "Input should be greater than or equal to 1"),
        ("DRAFTLINE_MAX_WAITING_PER_CLIENT", "1.5", "Input should be a valid integer"),
        ("DRAFTLINE_JOBS_PER_MINUTE", "0", "Input should be greater than or equal to 1"),
        ("DRAFTLINE_MAX_STREAMS_PER_CLIENT", "0", "Input should be greater than or equal to 1"),
        ("DRAFTLINE_MAX_STREAMS", "many", "Input should be a valid integer"),
        ("DRAFTLINE_READ_TIMEOUT", "-0.5", "Input should be greater than 0"),
        ("DRAFTLINE_LOG_LEVEL", "loud", "Input should be 'debug', 'info', 'warning' or 'error'"),
    ],
)
def test_a_bad_value_is_refused_with_the_variables_name(monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    assert str(refused.value).startswith(f"{name}: {problem}"), str(refused.value)


def test_every_bad_value_is_named_at_once(monkeypatch):
    monkeypatch.setenv("DRAFTLINE_PORT", "abc")
    monkeypatch.setenv("DRAFTLINE_MAX_STREAMS", "0")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    lines = str(refused.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["DRAFTLINE_PORT", "DRAFTLINE_MAX_STREAMS"]


def test_every_field_has_the_variable_its_name_says():
    assert env_name("store_url") == "DRAFTLINE_STORE"
    assert env_name("openai_api_key") == "OPENAI_API_KEY"
    assert env_name("max_streams") == "DRAFTLINE_MAX_STREAMS"


def test_secrets_stay_out_of_the_settings_repr():
    settings = Settings(openai_api_key="sk-secret", password="hunter2")
    assert "sk-secret" not in repr(settings) and "hunter2" not in repr(settings)


def test_draftline_refuses_to_start_on_a_bad_value_and_says_which():
    env = {**os.environ, "DRAFTLINE_PORT": "abc"}
    done = subprocess.run([sys.executable, "-m", "draftline"], env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        "draftline: not starting. DRAFTLINE_PORT: Input should be a valid integer, unable to parse "
        "string as an integer (got 'abc')\n"
    )
    assert done.stdout == ""


@pytest.mark.parametrize("level, logged", [("info", True), ("warning", False)])
def test_the_log_level_quiets_the_line_per_request_under_plain_uvicorn(start_app, level, logged):
    """`uvicorn --factory draftline.app:create_app` logs every request at INFO unless told
    otherwise on its own command line; DRAFTLINE_LOG_LEVEL says so too."""
    server = start_app(DRAFTLINE_LOG_LEVEL=level)
    with server.client() as http:
        assert http.get("/").status_code == 200
    server.stop()
    assert ('"GET / HTTP/1.1" 200' in server.log()) is logged, server.log()
