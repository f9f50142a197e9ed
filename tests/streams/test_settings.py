from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.streams.settings import (
    Settings,
    environment_names,
    load_settings,
    to_environment,
    unknown_environment_variables,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def test_settings_come_from_driftline_variables(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("DRIFTLINE_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("DRIFTLINE_WEB_ENABLED", "true")
    settings = load_settings()
    assert settings.bootstrap_server_list == ["kafka-1:9092", "kafka-2:9092"]
    assert settings.broker_url == "kafka://kafka-1:9092;kafka://kafka-2:9092"
    assert settings.topic_partitions == 12
    assert settings.web_enabled is True


def test_defaults_are_safe_for_a_single_local_worker():
    settings = load_settings()
    assert settings.predictions_topic == "driftline.predictions"
    assert settings.alerts_topic == "driftline.alerts"
    assert settings.web_host == "127.0.0.1"


def test_a_misspelt_variable_is_refused_with_a_suggestion(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVER", "kafka:9092")
    with pytest.raises(ValueError, match="did you mean DRIFTLINE_BOOTSTRAP_SERVERS"):
        load_settings()


def test_the_broker_cache_variable_is_not_taken_for_a_typo():
    assert unknown_environment_variables({"DRIFTLINE_BROKER_CACHE": "/x"}) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRIFTLINE_TOPIC_PARTITIONS", "0"),
        ("DRIFTLINE_QUALITY_ALPHA", "1.5"),
        ("DRIFTLINE_BOOTSTRAP_SERVERS", "kafka"),
        ("DRIFTLINE_LOG_LEVEL", "loud"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=environment_names()[name]):
        load_settings()


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().app_id = "other"  # type: ignore[misc]


def test_to_environment_round_trips(monkeypatch, tmp_path: Path):
    original = Settings(app_id="a", topic_partitions=3, data_dir=tmp_path, web_enabled=True)
    for name, value in to_environment(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


setting_names = st.sampled_from(sorted(environment_names()))
env_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(setting_names, env_values, max_size=5))
def test_any_environment_gives_settings_or_an_error_naming_the_setting(monkeypatch, environment):
    with monkeypatch.context() as patched:
        for name, value in environment.items():
            patched.setenv(name, value)
        try:
            loaded = load_settings()
        except ValidationError as error:
            named = {str(e["loc"][0]) for e in error.errors()}
            assert named <= {environment_names()[name] for name in environment}
        else:
            assert isinstance(loaded, Settings)
