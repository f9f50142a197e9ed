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


def test_to_environment_round_trips_a_secret_and_leaves_out_what_is_unset(monkeypatch):
    assert "DRIFTLINE_WEB_TOKEN" not in to_environment(Settings())
    original = Settings(web_enabled=True, web_host="0.0.0.0", web_token="s3cret-s3cret-s3cret")
    environment = to_environment(original)
    assert environment["DRIFTLINE_WEB_TOKEN"] == "s3cret-s3cret-s3cret"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "worker.internal"])
def test_a_web_server_beyond_this_machine_needs_a_token(host):
    with pytest.raises(ValidationError, match="set DRIFTLINE_WEB_TOKEN"):
        Settings(web_enabled=True, web_host=host)
    assert Settings(web_enabled=True, web_host=host, web_token="x" * 16).web_host == host
    assert Settings(web_enabled=False, web_host=host).web_token is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_web_server_on_this_machine_needs_none(host):
    assert Settings(web_enabled=True, web_host=host).web_token is None


def test_the_token_is_never_shown():
    settings = Settings(web_token="s3cret-s3cret-s3cret")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)
    assert "s3cret" not in settings.model_dump_json()
    with pytest.raises(ValidationError) as refused:
        Settings(web_token="short-s3cret")  # under 16 characters
    assert "short-s3cret" not in str(refused.value.errors(include_input=False))


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
            named = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
            assert named <= {environment_names()[name] for name in environment}
            for whole in [e for e in error.errors() if not e["loc"]]:  # the settings together
                assert any(name in whole["msg"] for name in environment), whole["msg"]
        else:
            assert isinstance(loaded, Settings)


def test_a_secret_may_come_from_the_file_its_file_variable_names(monkeypatch, tmp_path: Path):
    secret = tmp_path / "token"
    secret.write_text("s3cret-from-a-file-s3cret\n")
    monkeypatch.setenv("DRIFTLINE_WEB_TOKEN_FILE", str(secret))
    settings = load_settings()
    assert settings.web_token is not None
    assert settings.web_token.get_secret_value() == "s3cret-from-a-file-s3cret"


def test_a_secret_file_that_cannot_be_read_is_named_and_its_content_never_shown(
    monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("DRIFTLINE_WEB_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"DRIFTLINE_WEB_TOKEN_FILE=.*missing: cannot read"):
        load_settings()
    short = tmp_path / "short"
    short.write_text("short-s3cret")
    monkeypatch.setenv("DRIFTLINE_WEB_TOKEN_FILE", str(short))
    with pytest.raises(ValidationError) as refused:
        load_settings()
    assert "short-s3cret" not in str(refused.value.errors(include_input=False))


def test_a_secret_given_both_ways_is_refused(monkeypatch, tmp_path: Path):
    secret = tmp_path / "token"
    secret.write_text("s3cret-from-a-file-s3cret")
    monkeypatch.setenv("DRIFTLINE_WEB_TOKEN_FILE", str(secret))
    monkeypatch.setenv("DRIFTLINE_WEB_TOKEN", "s3cret-from-the-environment")
    with pytest.raises(ValueError, match="both set: set one of them"):
        load_settings()


SASL = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "driftline",
    "sasl_password": "s3cret-password",
}


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs DRIFTLINE_SASL_MECHANISM, "),
        ({**SASL, "sasl_username": None}, "needs DRIFTLINE_SASL_USERNAME"),
        ({"sasl_username": "u"}, "DRIFTLINE_SASL_USERNAME set, and "),
        ({"ssl_cafile": "ca.pem"}, "DRIFTLINE_SSL_CAFILE set, and "),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "go together"),
        ({"require_tls": True}, "DRIFTLINE_REQUIRE_TLS is set, and "),
        ({**SASL, "sasl_mechanism": "OAUTHBEARER"}, "takes a token file"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "needs DRIFTLINE_SASL_OAUTH_TOKEN_FILE",
        ),
        ({**SASL, "sasl_oauth_token_file": "token"}, "takes a user and password"),
        ({**SASL, "security_protocol": "SASL_PLAINTEXT", "require_tls": True}, "in the clear"),
    ],
)
def test_kafka_security_settings_must_make_a_whole(settings, said):
    with pytest.raises(ValidationError, match=said) as refused:
        Settings(**settings)
    assert "s3cret" not in str(refused.value.errors(include_input=False))


def test_secured_settings_take_sasl_over_tls_and_the_requirement():
    secured = Settings(**SASL, ssl_cafile="ca.pem", require_tls=True)
    assert secured.security_protocol == "SASL_SSL"
    assert Settings(security_protocol="SSL", require_tls=True).require_tls
