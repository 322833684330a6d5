import pytest

from stream_ner.errors import ConfigError
from stream_ner.settings import load_settings


def test_environment_nested_and_config_file(tmp_path, monkeypatch):
    config = tmp_path / "stream-ner.yaml"
    config.write_text(
        "kafka:\n  bootstrap_servers: file:9092\nworker:\n  max_batch_posts: 8\n  max_wait_ms: 7\n"
    )
    monkeypatch.setenv("STREAM_NER_CONFIG", str(config))
    monkeypatch.setenv("STREAM_NER_WORKER__MAX_BATCH_POSTS", "16")
    monkeypatch.setenv("STREAM_NER_KAFKA__SASL_PASSWORD", "s3cret")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "file:9092"  # from the file
    assert settings.worker.max_batch_posts == 16  # the environment wins over the file
    assert settings.worker.max_wait_ms == 7
    assert "s3cret" not in repr(settings)
    assert settings.kafka.librdkafka()["sasl.password"] == "s3cret"


def test_invalid_values_are_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("STREAM_NER_WORKER__MAX_BATCH_POSTS", "0")
    monkeypatch.setenv("STREAM_NER_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("invalid settings: ")
    assert (
        "STREAM_NER_WORKER__MAX_BATCH_POSTS: Input should be greater than or equal to 1 (got '0')" in message
    )
    assert "STREAM_NER_LOG_FORMAT: Input should be 'json' or 'text' (got 'xml')" in message


def test_a_log_level_is_one_of_four_in_any_case(monkeypatch):
    monkeypatch.setenv("STREAM_NER_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"
    monkeypatch.setenv("STREAM_NER_LOG_LEVEL", "verbose")
    with pytest.raises(
        ConfigError, match="STREAM_NER_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or"
    ):
        load_settings()
