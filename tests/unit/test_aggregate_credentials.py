"""The aggregator's faust credentials follow the same Kafka security settings as the workers."""

from pathlib import Path

import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from stream_ner.aggregate.faust_app import broker_credentials
from stream_ner.errors import ConfigError
from stream_ner.settings import KafkaSettings


def test_plaintext_needs_no_credentials():
    assert broker_credentials(KafkaSettings()) is None


def test_sasl_over_plaintext_carries_mechanism_user_and_password():
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="agg",
        sasl_password="s3cret",
    )
    credentials = broker_credentials(kafka)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism == SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("agg", "s3cret")
    assert credentials.ssl_context is None


def test_sasl_over_tls_gets_a_verifying_context():
    kafka = KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p"
    )
    credentials = broker_credentials(kafka)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.ssl_context is not None and credentials.ssl_context.check_hostname


def test_tls_alone_and_its_missing_files_are_a_config_error(tmp_path: Path):
    assert broker_credentials(KafkaSettings(security_protocol="SSL")).protocol == AuthProtocol.SSL
    missing = KafkaSettings(security_protocol="SSL", extra={"ssl.ca.location": str(tmp_path / "none.pem")})
    with pytest.raises(ConfigError, match="ssl.ca.location|TLS"):
        broker_credentials(missing)
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        broker_credentials(KafkaSettings(security_protocol="SASL_SSL"))
    with pytest.raises(ConfigError, match="not supported"):
        broker_credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="NOPE"))
