"""The command line as a user meets it: help text, import boundaries, and one-line errors."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pytest

from stream_ner.kafka import BrokerWatch, Deduplicate

HINT = (
    "start a local broker with `stream-ner local up`, or point STREAM_NER_KAFKA__BOOTSTRAP_SERVERS at yours"
)
UNREACHABLE = {
    "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "STREAM_NER_KAFKA__CONNECT_TIMEOUT_S": "1",
}


def stream_ner(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``python -X importtime -m stream_ner ARGS``: stderr also lists every module the command imported."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stream_ner", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | (env or {}),
    )


def imported(stderr: str) -> set[str]:
    return {
        line.rpartition("|")[2].strip() for line in stderr.splitlines() if line.startswith("import time:")
    }


def messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


def test_help_is_plain_text_and_imports_no_model_runtime():
    done = stream_ner("--help")
    assert done.returncode == 0
    assert "``" not in done.stdout
    assert (
        done.stdout.splitlines()[2] == "Real-time named-entity extraction for social-media streams on Kafka."
    )
    modules = imported(done.stderr)
    assert "stream_ner.cli" in modules  # the importtime listing works
    assert not {"onnxruntime", "torch", "transformers", "faust", "stream_ner.offline"} & modules


def test_tail_without_brokers_is_one_line_with_the_remedy_and_imports_no_model_runtime():
    done = stream_ner("tail", env=UNREACHABLE)
    assert done.returncode == 2
    assert messages(done.stderr) == [
        "stream-ner: error: cannot reach the Kafka brokers at 127.0.0.1:1 within 1 s "
        f"(Failed to get metadata: Local: Broker transport failure); {HINT}"
    ]
    assert "confluent_kafka" in imported(done.stderr)
    assert "onnxruntime" not in imported(done.stderr)


def test_produce_without_brokers_exits_after_the_bounded_wait():
    done = stream_ner("produce", "samples", env=UNREACHABLE)
    assert done.returncode == 2
    [line] = messages(done.stderr)
    assert "cannot reach the Kafka brokers at 127.0.0.1:1" in line and "stream-ner local up" in line


def test_a_taken_metrics_port_is_one_line_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = stream_ner("worker", "--metrics-port", str(port), env=UNREACHABLE)
    assert done.returncode == 2
    assert messages(done.stderr)[-1] == (
        f"stream-ner: error: cannot serve metrics on 127.0.0.1:{port} (Address already in use): choose "
        "another port with --metrics-port or STREAM_NER_WORKER__METRICS_PORT (0 turns the endpoint off)"
    )
    assert "onnxruntime" not in imported(done.stderr)


def test_a_taken_aggregator_metrics_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = stream_ner("aggregate", env=UNREACHABLE | {"STREAM_NER_AGGREGATE__METRICS_PORT": str(port)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert messages(done.stderr)[-1] == (
        f"stream-ner: error: cannot serve metrics on 127.0.0.1:{port} (Address already in use): choose "
        "another port with STREAM_NER_AGGREGATE__METRICS_PORT (0 turns the endpoint off)"
    )


def test_a_taken_dashboard_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = stream_ner("dashboard", "--port", str(port), env=UNREACHABLE)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert messages(done.stderr)[-1] == (
        f"stream-ner: error: cannot serve the dashboard on 127.0.0.1:{port} (Address already in use): choose "
        "another port with --port or STREAM_NER_DASHBOARD__PORT"
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["worker", "--metrics-port", "0", "--model", "/nonexistent/model"],
            UNREACHABLE,
            "stream-ner: error: model artifact /nonexistent/model is not a directory",
        ),
        (
            ["worker"],
            {"STREAM_NER_WORKER__MAX_WAIT_MS": "soon"},
            "stream-ner: error: invalid settings: STREAM_NER_WORKER__MAX_WAIT_MS: Input should be a valid "
            "integer, unable to parse string as an integer (got 'soon')",
        ),
    ],
)
def test_start_up_errors_are_one_line_and_no_traceback(args, env, expected):
    done = stream_ner(*args, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert messages(done.stderr)[-1] == expected


def test_repeated_log_lines_are_shown_once_then_summarised_per_window():
    now = [0.0]
    dedupe = Deduplicate(window_s=300.0, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("stream_ner.librdkafka", logging.ERROR, "", 0, message, (), None)

    fail = "FAIL [rdkafka#consumer-{}] Connect to 127.0.0.1:9092 failed (after {}ms in state CONNECT)"
    assert dedupe.filter(record(fail.format(1, 0)))
    for i in range(50):
        now[0] += 1.0
        assert not dedupe.filter(record(fail.format(1, i)))  # same line but for its numbers
    assert dedupe.filter(record("something else"))
    now[0] = 301.0
    summary = record(fail.format(1, 7))
    assert dedupe.filter(summary)
    assert summary.getMessage().endswith("(and 50 more like it in 300 s)")


class FakeError:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


def test_unreachable_brokers_are_reported_once_until_reached_again(caplog):
    from confluent_kafka import KafkaError

    watch = BrokerWatch("127.0.0.1:9092", logging.getLogger("test.watch"))
    with caplog.at_level(logging.INFO, logger="test.watch"):
        for _ in range(3):
            watch.on_error(FakeError(KafkaError._TRANSPORT, "Connection refused"))
            watch.on_error(FakeError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        watch.reachable()
        watch.reachable()
        watch.on_error(FakeError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    lines = [r.getMessage() for r in caplog.records if r.name == "test.watch"]
    retrying = "retrying in the background"
    assert lines == [
        f"cannot reach the Kafka brokers at 127.0.0.1:9092 (Connection refused); {retrying}; {HINT}",
        "reached the Kafka brokers at 127.0.0.1:9092",
        f"cannot reach the Kafka brokers at 127.0.0.1:9092 (1/1 brokers are down); {retrying}; {HINT}",
    ]


def test_model_commands_build_the_model_from_the_settings(monkeypatch):
    from stream_ner.commands.model_runtime import load_model

    monkeypatch.setenv("STREAM_NER_MODEL__MAX_PADDING", "0.3")
    monkeypatch.setenv("STREAM_NER_MODEL__INTRA_OP_THREADS", "1")
    model = load_model(None, "fp32")
    assert (model.max_padding, model.precision) == (0.3, "fp32")


def test_one_broker_of_three_refusing_connections_is_a_warning_not_an_outage(caplog):
    from confluent_kafka import KafkaError

    from stream_ner.kafka import LOGGER_NAME

    watch = BrokerWatch("127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094", logging.getLogger("test.watch"))
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            watch.on_error(FakeError(KafkaError._TRANSPORT, "127.0.0.1:9093/2: Connection refused"))
        watch.on_error(FakeError(KafkaError._ALL_BROKERS_DOWN, "3/3 brokers are down"))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert warnings and all("Connection refused" in w for w in warnings)
    assert errors == [
        "cannot reach the Kafka brokers at 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 "
        f"(127.0.0.1:9093/2: Connection refused); retrying in the background; {HINT}"
    ]
    assert watch.down


def test_aiokafka_retry_errors_are_deduplicated_like_librdkafkas():
    import aiokafka  # noqa: F401  (its module loggers exist once imported)

    from stream_ner.kafka import deduplicate_loggers

    names = deduplicate_loggers("aiokafka")
    assert {"aiokafka", "aiokafka.conn", "aiokafka.consumer.fetcher"} <= set(names)
    assert deduplicate_loggers("aiokafka") == names  # idempotent: still one filter each
    assert all(sum(isinstance(f, Deduplicate) for f in logging.getLogger(n).filters) == 1 for n in names)
    caught: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: caught.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("aiokafka")
    logger.addHandler(handler)
    try:
        for attempt in range(20):  # aiokafka's line per retry while the broker is down
            logger.error(
                "Unable connect to node with id %s: %s", 1, f"[Errno 111] Connect call failed {attempt}"
            )
    finally:
        logger.removeHandler(handler)
    assert caught == ["Unable connect to node with id 1: [Errno 111] Connect call failed 0"]


def test_a_label_offset_is_a_type_and_a_finite_number():
    import argparse

    from stream_ner.commands.model_runtime import label_offset

    assert label_offset("PRODUCT=0.5") == ("PRODUCT", 0.5)
    assert label_offset(" ORG =-1") == ("ORG", -1.0)
    for bad in ("PRODUCT", "PRODUCT=", "=1", "PRODUCT=x", "PRODUCT=nan", "PRODUCT=inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="TYPE=VALUE"):
            label_offset(bad)
