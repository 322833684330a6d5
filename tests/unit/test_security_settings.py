"""Secrets and refusals without a server: what is printed, what is masked, what reaches the clients."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from confluent_kafka import KafkaError

from stream_ner import redis_conn
from stream_ner.commands.config import MASK, masked
from stream_ner.errors import AuthenticationFailed, ConfigError
from stream_ner.kafka import BrokerWatch, refusal
from stream_ner.settings import KafkaSettings, RedisSettings, Settings
from stream_ner.worker.runner import consumer_config

KAFKA = KafkaSettings(
    bootstrap_servers="kafka-1:9093",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="alice",
    sasl_password="hunter2-kafka",
)
AUTH_REASON = (
    "sasl_ssl://kafka-1:9093/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 310ms in state AUTH_REQ)"
)


class FakeError:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


def test_a_refused_password_names_the_address_user_and_settings_but_not_the_secret():
    error = refusal(KAFKA, KafkaError._AUTHENTICATION, AUTH_REASON)
    assert isinstance(error, AuthenticationFailed) and isinstance(error, ConfigError)
    assert str(error) == (
        "the Kafka brokers at kafka-1:9093 refused user 'alice' (SCRAM-SHA-512): SASL authentication error: "
        "Authentication failed during authentication due to invalid credentials with SASL mechanism "
        "SCRAM-SHA-512; check STREAM_NER_KAFKA__SASL_USERNAME, STREAM_NER_KAFKA__SASL_PASSWORD and "
        "STREAM_NER_KAFKA__SASL_MECHANISM"
    )
    tls = refusal(
        KAFKA, KafkaError._SSL, "sasl_ssl://kafka-1:9093/1: SSL handshake failed: certificate verify failed"
    )
    assert str(tls).startswith("TLS with the Kafka brokers at kafka-1:9093 failed: SSL handshake failed:")
    assert refusal(KAFKA, KafkaError._TRANSPORT, "Connection refused") is None
    cut = "sasl_ssl://kafka-1:9093/1: SSL handshake failed: Disconnected: connection closed by peer"
    assert refusal(KAFKA, KafkaError._SSL, cut) is None  # a restarting broker: retried


def test_the_worker_watch_raises_a_refusal_once_and_then_stays_quiet(caplog):
    watch = BrokerWatch(KAFKA.bootstrap_servers, logging.getLogger("test.watch"), KAFKA)
    with caplog.at_level(logging.INFO, logger="test.watch"):
        with pytest.raises(AuthenticationFailed, match="refused user 'alice'"):
            watch.on_error(FakeError(KafkaError._AUTHENTICATION, AUTH_REASON))
        watch.on_error(FakeError(KafkaError._AUTHENTICATION, AUTH_REASON))  # the client closing: no raise
        watch.on_error(FakeError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))  # not "unreachable"
    assert caplog.records == []


def test_masked_hides_secret_properties_and_url_passwords_and_nothing_else():
    data = {
        "kafka": {"sasl_password": MASK, "extra": {"ssl.key.password": "k", "ssl.ca.location": "/ca.pem"}},
        "redis": {"url": "rediss://bob:s3cret@redis:6380/0", "username": "bob"},
        "worker": {"max_batch_tokens": 8192},
        "dashboard": {"token": None},
    }
    assert masked(data) == {
        "kafka": {"sasl_password": MASK, "extra": {"ssl.key.password": MASK, "ssl.ca.location": "/ca.pem"}},
        "redis": {"url": f"rediss://bob:{MASK}@redis:6380/0", "username": "bob"},
        "worker": {"max_batch_tokens": 8192},
        "dashboard": {"token": None},
    }


def test_config_effective_shows_no_secret_given_in_the_environment():
    env = {
        "STREAM_NER_KAFKA__SASL_PASSWORD": "kafka-secret-1",
        "STREAM_NER_KAFKA__EXTRA": json.dumps({"sasl.oauthbearer.client.secret": "oauth-secret-2"}),
        "STREAM_NER_REDIS__PASSWORD": "redis-secret-3",
        "STREAM_NER_REDIS__URL": "redis://u:redis-secret-4@127.0.0.1:6379/0",
        "STREAM_NER_DASHBOARD__TOKEN": "token-secret-5",
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream_ner", "config", "--effective"],
        env={"PATH": "/usr/bin:/bin"} | env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "127.0.0.1:6379" in done.stdout
    assert not [secret for secret in env.values() if "secret" in secret and secret in done.stdout]


def test_the_redis_connection_url_carries_the_credentials_and_ca_and_the_address_does_not():
    settings = RedisSettings.model_validate(
        {"url": "rediss://redis:6380/0", "username": "agg", "password": "p@ss:word/1", "ca_file": "/ca.pem"}
    )
    assert settings.connection_url() == "rediss://agg:p%40ss%3Aword%2F1@redis:6380/0?ssl_ca_certs=%2Fca.pem"
    assert redis_conn.address(settings) == "rediss://redis:6380/0"
    assert "p@ss" not in repr(settings) and "p@ss" not in str(Settings(redis=settings).model_dump())
    assert RedisSettings().connection_url() == "redis://127.0.0.1:6379/0"
    in_url = RedisSettings(url="redis://u:pw@redis:6379/0")
    assert (
        in_url.connection_url() == "redis://u:pw@redis:6379/0"
        and redis_conn.address(in_url) == "redis://redis:6379/0"
    )


def test_static_membership_sets_the_group_instance_id_only_when_configured():
    assert "group.instance.id" not in consumer_config(Settings())
    settings = Settings.model_validate({"worker": {"group_instance_id": "stream-ner-worker-2"}})
    assert consumer_config(settings)["group.instance.id"] == "stream-ner-worker-2"
