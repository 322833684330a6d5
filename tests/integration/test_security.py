"""Secured connections for real: Kafka SASL_SSL (SCRAM-SHA-512 over TLS) and Redis over TLS with an ACL user.

One secured broker and one secured Redis for the module, with a throw-away CA (``tls_files``). The worker,
the aggregator, ``produce``, ``tail``, ``topics apply`` and ``brands top`` work through them; a wrong
password or a plaintext client is one line and a non-zero exit within seconds; no password appears in any
log or in ``config --effective``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream_ner import localstack, redis_conn
from stream_ner.localstack import free_port
from stream_ner.settings import RedisSettings
from stream_ner.worker.metrics import scrape
from tests.integration.tls_files import TlsFiles, make_tls_files

USER = "stream-ner"
POSTS = 20


@dataclass(frozen=True)
class Secured:
    kafka: localstack.LocalService
    redis: localstack.LocalService
    tls: TlsFiles
    kafka_password: str
    redis_password: str

    def env(self, tag: str, **overrides: str) -> dict[str, str]:
        """Environment of a stream-ner process using both services, with topics and keys of ``tag``."""
        return (
            os.environ
            | {
                "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap,
                "STREAM_NER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "STREAM_NER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "STREAM_NER_KAFKA__SASL_USERNAME": USER,
                "STREAM_NER_KAFKA__SASL_PASSWORD": self.kafka_password,
                "STREAM_NER_KAFKA__EXTRA": json.dumps({"ssl.ca.location": str(self.tls.ca)}),
                "STREAM_NER_KAFKA__CONNECT_TIMEOUT_S": "15",
                "STREAM_NER_REDIS__URL": self.redis.url,
                "STREAM_NER_REDIS__USERNAME": USER,
                "STREAM_NER_REDIS__PASSWORD": self.redis_password,
                "STREAM_NER_REDIS__CA_FILE": str(self.tls.ca),
                "STREAM_NER_REDIS__KEY_PREFIX": f"{tag}:",
                "STREAM_NER_TOPICS__RAW_POSTS": f"{tag}.raw",
                "STREAM_NER_TOPICS__ENTITIES": f"{tag}.entities",
                "STREAM_NER_TOPICS__DLQ": f"{tag}.dlq",
                "STREAM_NER_TOPICS__BRAND_AGGREGATES": f"{tag}.aggregates",
                "STREAM_NER_TOPICS__BRAND_ALERTS": f"{tag}.alerts",
                "STREAM_NER_TOPICS__REPLICATION_FACTOR": "1",
                "STREAM_NER_WORKER__GROUP_ID": f"{tag}.workers",
                "STREAM_NER_WORKER__METRICS_PORT": str(free_port()),
                "STREAM_NER_MODEL__INTRA_OP_THREADS": "1",
                "STREAM_NER_AGGREGATE__APP_ID": f"{tag}.aggregate",
                "STREAM_NER_AGGREGATE__PARTITIONS": "2",
                "STREAM_NER_AGGREGATE__FLUSH_INTERVAL_MS": "200",
                "STREAM_NER_AGGREGATE__METRICS_PORT": str(free_port()),
                "STREAM_NER_LOG_LEVEL": "DEBUG",
            }
            | overrides
        )

    def redis_settings(self, prefix: str) -> RedisSettings:
        return RedisSettings.model_validate(
            {
                "url": self.redis.url,
                "key_prefix": prefix,
                "username": USER,
                "password": self.redis_password,
                "ca_file": self.tls.ca,
            }
        )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A SASL_SSL broker with one SCRAM user and a TLS-only Redis whose only user has a password."""
    directory = tmp_path_factory.mktemp("secured")
    tls = make_tls_files(directory)
    kafka_password, redis_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    acl = directory / "users.acl"
    acl.write_text(f"user default off\nuser {USER} on >{redis_password} ~* &* +@all\n")
    acl.chmod(0o600)
    failure = ""
    kafka = redis = None
    try:
        kafka = localstack.start_kafka(tls_pem=tls.bundle)
        kafka.add_scram_user(USER, kafka_password)
        redis = localstack.start_redis(tls_cert=tls.cert, tls_key=tls.key, acl_file=acl)
    except localstack.LocalStackError as exc:
        failure = f"the security tests need a secured local Kafka and Redis: {exc}"
    if failure:
        if kafka is not None:
            kafka.stop()
        pytest.fail(failure, pytrace=False)
    assert kafka is not None and redis is not None
    yield Secured(kafka, redis, tls, kafka_password, redis_password)
    kafka.stop()
    redis.stop()


def stream_ner(
    *args: str, env: dict[str, str], timeout: float = 120.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_ner", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> tuple[subprocess.Popen, Path]:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_ner", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, log


def wait_for(
    condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None
):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_worker_aggregator_and_commands_work_through_sasl_ssl_and_redis_tls_and_log_no_secret(
    secured: Secured, tmp_path: Path, report
):
    tag = f"sec-{uuid.uuid4().hex[:8]}"
    env = secured.env(tag)
    outputs: list[str] = []
    began = time.monotonic()

    applied = stream_ner("topics", "apply", env=env)
    outputs += [applied.stdout, applied.stderr]
    assert applied.returncode == 0, applied.stderr
    assert f"created {tag}.raw" in applied.stdout

    worker, worker_log = spawn("worker", ["worker", "--name", "w0"], env, tmp_path)
    aggregator, aggregator_log = spawn("aggregator", ["aggregate"], env, tmp_path)
    try:
        port = int(env["STREAM_NER_WORKER__METRICS_PORT"])
        wait_for(
            lambda: scrape(port).get("stream_ner_assigned_partitions", 0) > 0,
            90,
            "the worker's partitions",
            worker,
            worker_log,
        )
        produced = stream_ner("produce", "samples", "--count", str(POSTS), "--stamp", env=env)
        outputs += [produced.stdout, produced.stderr]
        assert produced.returncode == 0, produced.stderr
        tailed = stream_ner(
            "tail", "--from-beginning", "--raw", "--count", str(POSTS), "--timeout", "60", env=env
        )
        outputs += [tailed.stdout, tailed.stderr]
        assert tailed.returncode == 0, tailed.stderr
        events = [json.loads(line) for line in tailed.stdout.splitlines()]
        assert len(events) == POSTS and all(e["origin"]["topic"] == f"{tag}.raw" for e in events)
        end_to_end = time.monotonic() - began

        client = redis_conn.connect(secured.redis_settings(f"{tag}:"))
        wait_for(
            lambda: any(True for _ in client.scan_iter(match=f"{tag}:*", count=100)),
            90,
            "the aggregator's first Redis write",
            aggregator,
            aggregator_log,
        )
        client.close()
        top = stream_ner("brands", "top", "--window", "1m", env=env)
        outputs += [top.stdout, top.stderr]
        assert top.returncode == 0, top.stdout + top.stderr
        assert "window" in top.stdout
        effective = stream_ner("config", "--effective", env=env)
        outputs += [effective.stdout, effective.stderr]
        assert effective.returncode == 0 and '"sasl_password": "**********"' in effective.stdout
    finally:
        stop(worker)
        stop(aggregator)
    logs = {"worker": worker_log.read_text(), "aggregator": aggregator_log.read_text()}
    assert "worker stopped" in logs["worker"]
    for secret in (secured.kafka_password, secured.redis_password):
        for name, text in logs.items():
            assert secret not in text, f"a password is in the {name}'s log"
        assert not [o for o in outputs if secret in o], "a password is in a command's output"
    report(
        f"security: topics apply, worker, produce and tail of {POSTS} posts over SASL_SSL in "
        f"{end_to_end:.1f} s; aggregator wrote Redis over TLS as an ACL user; "
        f"{sum(len(t) for t in logs.values()) // 1024} KiB of DEBUG logs free of both passwords"
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("stream-ner: error:")]
    assert done.returncode != 0, done.stderr
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr and " ERROR " not in done.stderr, done.stderr
    return errors[0]


def test_refused_credentials_and_plaintext_clients_are_one_line_and_a_quick_exit(secured: Secured, report):
    tag = f"sec-{uuid.uuid4().hex[:8]}"
    wrong = secrets.token_urlsafe(12)
    timings: dict[str, float] = {}

    def run(name: str, *args: str, **overrides: str) -> str:
        began = time.monotonic()
        done = stream_ner(*args, env=secured.env(tag, **overrides), timeout=60, stdin="")
        timings[name] = time.monotonic() - began
        line = _one_error_line(done)
        assert wrong not in done.stderr + done.stdout
        assert secured.kafka_password not in done.stderr + done.stdout
        return line

    bad_kafka = {"STREAM_NER_KAFKA__SASL_PASSWORD": wrong}
    for name, args in {
        "topics apply": ("topics", "apply"),
        "produce": ("produce", "samples"),
        "tail": ("tail", "--timeout", "5"),
        "worker": ("worker",),
        "aggregate": ("aggregate",),
    }.items():
        line = run(name, *args, **bad_kafka)
        assert f"refused user '{USER}' (SCRAM-SHA-512)" in line, line
        assert "STREAM_NER_KAFKA__SASL_PASSWORD" in line

    line = run("plaintext client", "topics", "apply", STREAM_NER_KAFKA__SECURITY_PROTOCOL="PLAINTEXT")
    assert "as a TLS listener does to a PLAINTEXT client" in line, line
    line = run("untrusted CA", "topics", "apply", STREAM_NER_KAFKA__EXTRA="{}")
    assert "TLS with the Kafka brokers" in line and "certificate verify failed" in line, line

    bad_redis = {"STREAM_NER_REDIS__PASSWORD": wrong}
    for name, args in {"brands top": ("brands", "top"), "aggregate (redis)": ("aggregate",)}.items():
        line = run(name, *args, **bad_redis)
        assert f"refused user '{USER}'" in line and "STREAM_NER_REDIS__PASSWORD" in line, line
    plain_url = secured.redis.url.replace("rediss://", "redis://")
    line = run("redis:// to TLS", "brands", "top", STREAM_NER_REDIS__URL=plain_url)
    assert "use a rediss:// URL" in line, line
    report("security refusals (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    assert max(timings.values()) < 30, timings
