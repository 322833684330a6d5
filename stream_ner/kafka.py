"""Where confluent-kafka meets the rest of stream-ner: client logging and unreachable brokers.

- librdkafka's own log lines (``%3|...|FAIL|...``, printed to stderr by default, once per retry, forever)
  go through Python logging instead: every client built here gets ``logger`` =
  ``librdkafka_logger()``, whose ``Deduplicate`` filter lets the first of a kind through and then one
  summary per five minutes while it repeats.
- ``deduplicate_loggers`` does the same for another client library's loggers (aiokafka's, which the
  aggregator uses through faust, log an ERROR per retry while a broker is down).
- ``BrokerWatch`` turns librdkafka's error callback into one clear line when the cluster cannot be
  reached (with the address and what to do), and one when it is reached again; librdkafka keeps
  retrying on its own, so a long-running client (the worker) just waits quietly. Refused credentials or
  a failed TLS handshake are not worth retrying: ``on_error`` raises ``AuthenticationFailed`` (out of the
  client's ``poll``/``consume``), so the process stops with one line.
- ``ensure_reachable`` is for one-shot commands (``produce``, ``tail``, ``topics``) and the aggregator's
  start: it waits a bounded time for the cluster's metadata and raises ``KafkaUnavailable`` with the same
  advice, or ``AuthenticationFailed`` as soon as the brokers refuse the credentials, the TLS handshake
  fails, or a plaintext client finds a TLS listener.

No message built here contains a password: librdkafka's reasons name the user and mechanism at most.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from stream_ner.errors import AuthenticationFailed, KafkaUnavailable
from stream_ner.settings import KafkaSettings

HINT = (
    "start a local broker with `stream-ner local up`, or point STREAM_NER_KAFKA__BOOTSTRAP_SERVERS at yours"
)

LOGGER_NAME = "stream_ner.librdkafka"

_UNREACHABLE_CODES = frozenset({-195, -187, -193})  # _TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE
_ALL_BROKERS_DOWN = -187
_AUTHENTICATION, _SSL = -169, -181
_NUMBERS = re.compile(r"\d+")
# librdkafka's reason without its "proto://host:port/id: " prefix and "(after N ms in state X)" suffix
_REASON = re.compile(r"^(?:\S+://)?\S+/(?:bootstrap|\d+): |\s*\(after \d+ms in state \w+\)$")
# a TLS listener closes a plaintext connection while the client asks for API versions
_CLOSED_EARLY = re.compile(r"Disconnected.*in state APIVERSION_QUERY")
# TLS failures no retry can mend (a handshake cut short by a restarting broker is not one of them)
_TLS_REFUSED = re.compile(
    r"certificate|verify failed|wrong version|protocol version|no shared cipher|unknown ca|alert", re.I
)


class Deduplicate(logging.Filter):
    """Lets the first record of each kind through, then one per ``window_s`` that counts the repeats.

    Records are of the same kind when their logger, level and message agree once digits are ignored
    (librdkafka varies client numbers, timings and "N identical errors suppressed" counts).
    """

    def __init__(self, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self._clock = window_s, clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # kind -> [first shown, repeats since]

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to emit ``record`` (rewritten to count the repeats it stands for)."""
        kind = (record.name, record.levelno, _NUMBERS.sub("#", record.getMessage()))
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if len(self._seen) > 1000:  # bounded memory whatever librdkafka says
            self._seen.clear()
        self._seen[kind] = [now, 0]
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} (and {int(seen[1])} more like it in {self.window_s:.0f} s)"
            record.args = ()
        return True


def librdkafka_logger() -> logging.Logger:
    """The logger librdkafka's lines go to (``LOGGER_NAME``), deduplicated."""
    return _deduplicated(logging.getLogger(LOGGER_NAME))


def _deduplicated(logger: logging.Logger) -> logging.Logger:
    """``logger`` with a ``Deduplicate`` filter (added once, however often this is called)."""
    if not any(isinstance(f, Deduplicate) for f in logger.filters):
        logger.addFilter(Deduplicate())
    return logger


def deduplicate_loggers(prefix: str) -> list[str]:
    """Give every logger named ``prefix`` or ``prefix.*`` that exists now a ``Deduplicate`` filter.

    For a library that logs an ERROR per retry while a broker is down (aiokafka, under the aggregator):
    import it first, so its module loggers exist. Returns the loggers' names.
    """
    names = sorted(n for n in logging.root.manager.loggerDict if n == prefix or n.startswith(prefix + "."))
    for name in names:
        _deduplicated(logging.getLogger(name))
    return names


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """``kafka.librdkafka()`` plus the Python logger for librdkafka's own lines."""
    return kafka.librdkafka() | {"logger": librdkafka_logger()}


def refusal(kafka: KafkaSettings, code: int, reason: str) -> AuthenticationFailed | None:
    """The ``AuthenticationFailed`` for a librdkafka error that retrying cannot mend, else ``None``.

    ``code`` and ``reason`` are a ``KafkaError``'s ``code()`` and ``str()``.
    """
    where = kafka.bootstrap_servers
    why = _REASON.sub("", reason)
    if code == _AUTHENTICATION:
        who = f"user {kafka.sasl_username!r}" if kafka.sasl_username else "no user name"
        return AuthenticationFailed(
            f"the Kafka brokers at {where} refused {who} ({kafka.sasl_mechanism or 'no SASL mechanism'}): "
            f"{why}; check STREAM_NER_KAFKA__SASL_USERNAME, STREAM_NER_KAFKA__SASL_PASSWORD and "
            "STREAM_NER_KAFKA__SASL_MECHANISM"
        )
    if code == _SSL and _TLS_REFUSED.search(reason):
        return AuthenticationFailed(
            f"TLS with the Kafka brokers at {where} failed: {why}; check STREAM_NER_KAFKA__SECURITY_PROTOCOL "
            "and ssl.ca.location in STREAM_NER_KAFKA__EXTRA"
        )
    return None


def _closed_early(kafka: KafkaSettings) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"the Kafka brokers at {kafka.bootstrap_servers} closed every connection before answering, as a TLS "
        f"listener does to a {kafka.security_protocol} client; set STREAM_NER_KAFKA__SECURITY_PROTOCOL to "
        "SSL or SASL_SSL (and ssl.ca.location in STREAM_NER_KAFKA__EXTRA)"
    )


class _Probe(logging.Handler):
    """Collects what one admin client hears: its errors and librdkafka's FAIL lines (not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[tuple[int, str]] = []
        self.closed_early = 0
        self.logger = logging.Logger(f"{LOGGER_NAME}.probe")  # unregistered: never reaches the root handlers
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """A librdkafka log line."""
        if _CLOSED_EARLY.search(record.getMessage()):
            self.closed_early += 1

    def on_error(self, error: Any) -> None:
        """The admin client's ``error_cb``."""
        self.errors.append((error.code(), error.str()))


class BrokerWatch:
    """Reports once that no broker can be reached, and once that one can again.

    Pass ``on_error`` as a client's ``error_cb``, and call ``reachable`` whenever the client has shown the
    cluster answers (an assignment, a record). Only librdkafka's "all brokers down" is an outage (an ERROR
    line naming the last connection failure's reason): one broker of several refusing connections, as
    while it restarts, is a warning like any other error, deduplicated like librdkafka's own lines.
    """

    def __init__(self, bootstrap: str, log: logging.Logger, kafka: KafkaSettings | None = None) -> None:
        self.bootstrap, self._log = bootstrap, log
        self._kafka = kafka or KafkaSettings(bootstrap_servers=bootstrap)
        self.down = False
        self.refused: AuthenticationFailed | None = None
        self._last_failure = ""  # the last connection failure's reason, named by the outage line

    def on_error(self, error: Any) -> None:
        """librdkafka's ``error_cb``: a ``KafkaError``.

        Raises ``AuthenticationFailed`` the first time the brokers refuse the credentials or TLS fails
        (later ones are ignored, so a client closing after it does not raise again).
        """
        refused = refusal(self._kafka, error.code(), error.str())
        if refused is not None:
            if self.refused is None:
                self.refused = refused
                raise refused
            return
        if self.refused is not None:  # the brokers are "down" only because they refuse us: said already
            return
        if error.code() == _ALL_BROKERS_DOWN:
            if not self.down:
                self.down = True
                self._log.error(
                    "cannot reach the Kafka brokers at %s (%s); retrying in the background; %s",
                    self.bootstrap,
                    self._last_failure or error.str(),
                    HINT,
                )
            return
        if error.code() in _UNREACHABLE_CODES:  # one broker: the others may serve
            self._last_failure = error.str()
            if self.down:
                return
        librdkafka_logger().warning("kafka error: %s", error.str())

    def reachable(self) -> None:
        """The cluster answered: say so once after an outage was reported."""
        self._last_failure = ""
        if self.down:
            self.down = False
            self._log.info("reached the Kafka brokers at %s", self.bootstrap)


def ensure_reachable(kafka: KafkaSettings, timeout_s: float | None = None) -> None:
    """Wait up to ``timeout_s`` (default: ``kafka.connect_timeout_s``) for the cluster's metadata.

    Raises ``KafkaUnavailable`` naming the address and the remedy when no broker answers in time.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    timeout = kafka.connect_timeout_s if timeout_s is None else timeout_s
    probe = _Probe()
    admin = AdminClient(kafka.librdkafka() | {"logger": probe.logger, "error_cb": probe.on_error})
    deadline, reason = time.monotonic() + timeout, ""
    while True:
        try:
            admin.list_topics(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            reason = exc.args[0].str() if exc.args else str(exc)
        admin.poll(0)  # serves the error and log callbacks
        for code, text in probe.errors:
            if (refused := refusal(kafka, code, text)) is not None:
                raise refused
        if probe.closed_early >= 3 and kafka.security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            raise _closed_early(kafka)
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(
                f"cannot reach the Kafka brokers at {kafka.bootstrap_servers} within {timeout:g} s "
                f"({reason}); {HINT}"
            )
