"""One error tree for stream-ner.

::

    StreamNerError
    ├── ConfigError            settings or files that make start-up impossible (fatal, before any I/O)
    │   └── AuthenticationFailed   Kafka or Redis refuse the credentials or the TLS set-up: retrying cannot
    │                              help, so clients stop at once with what to check (never the secret)
    ├── ModelError             a model artifact that is missing, corrupt or incompatible (fatal at load)
    │   └── GpuUnavailableError   ``require_gpu`` is set and no CUDA provider can be had
    ├── InvalidPost            one input message is unusable (permanent: it becomes a ``Rejected``
    │                          record on the dead-letter topic with ``code`` and ``reason``)
    ├── TransientError         a dependency is unreachable for now (retried with backoff, never data loss)
    │   ├── KafkaUnavailable
    │   └── RedisUnavailable
    ├── DeliveryError          the producer gave up on a record: the worker (or the aggregator) stops
    │                          without storing offsets past it, so the input is processed again after
    │                          restart
    ├── MissingExtra           an optional part (the aggregator, training, export) is used without the
    │                          extra that installs it; the message names the ``pip install`` to run
    └── LocalStackError        the local Kafka or Redis of ``stream-ner local``/``demo``/tests could not be
                               started, found or stopped (the message says why and where the logs are)

Permanent faults of a single message are data, not exceptions that unwind the worker: ``InvalidPost`` is
raised by the pure parsing core and turned into a ``Rejected`` record at the edge.
"""

from __future__ import annotations


class StreamNerError(Exception):
    """Base class of every error stream-ner raises on purpose."""


class ConfigError(StreamNerError):
    """Settings or files make start-up impossible."""


class AuthenticationFailed(ConfigError):
    """Kafka or Redis refused the credentials, or TLS could not be set up; the message says what to check."""


class ModelError(StreamNerError):
    """A model artifact is missing, corrupt or incompatible with this runtime."""


class GpuUnavailableError(ModelError):
    """``require_gpu`` is set but onnxruntime offers no CUDA execution provider."""


class InvalidPost(StreamNerError):
    """One input message cannot be processed; it goes to the dead-letter topic.

    ``code`` is a stable machine-readable reason (``invalid_json``, ``missing_text``, ...);
    the message text is for humans.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class TransientError(StreamNerError):
    """A dependency is unreachable for now; the caller retries with backoff."""


class KafkaUnavailable(TransientError):
    """The Kafka cluster cannot be reached or answered with a retriable error."""


class RedisUnavailable(TransientError):
    """Redis cannot be reached; writes are retried, nothing is dropped."""


class DeliveryError(StreamNerError):
    """The producer failed permanently to deliver a record; offsets must not move past its input."""


class MissingExtra(StreamNerError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class LocalStackError(StreamNerError):
    """A local service could not be started, found or stopped; the message says why and where the logs are."""
