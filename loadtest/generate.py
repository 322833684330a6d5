"""The load generator: realistic posts to the input topic at a scheduled rate, each carrying its send time.

Every post is a valid ``Post``: ``id`` ``<step>-<n>``, a varied corpus text, and in ``metadata`` the step
name (``loadtest``), its sequence number (``seq``) and the wall-clock send time in ns (``sent_at_ns``),
which the worker carries through to the entity event. Posts go out when the schedule says; a generator
that falls behind sends at once and reports how late it was (``max_behind_ms``), it never skips posts.
Traffic goes to a broker on the loopback interface only (``ensure_local``), and a run ends by itself:
its schedule is finite and ``max_count`` bounds it further.

With ``--duplicates SHARE`` that share of the posts repeats an earlier post's text verbatim under a new
id (``corpus.with_repeats``), as retweets and copy-pasted promotions do.

Standalone: ``python -m loadtest.generate --bootstrap 127.0.0.1:9092 --topic raw-posts --rate 200
--duration 30`` (add ``--ramp-to`` or ``--burst-rate`` for the other shapes, ``--duplicates 0.3`` for
repeats).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from loadtest import schedule
from loadtest.corpus import load_corpus, stream, with_repeats

_SPIN_S = 0.0005


def ensure_local(bootstrap: str) -> None:
    """Refuse any bootstrap server that is not on the loopback interface."""
    for server in bootstrap.split(","):
        host = server.strip().rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            continue
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"load tests only send to a local broker; {server!r} is not on 127.0.0.1")


def post_value(post_id: str, text: str, step: str, seq: int, sent_at_ns: int) -> bytes:
    """The JSON value of one load-test post."""
    metadata = {"loadtest": step, "seq": seq, "sent_at_ns": sent_at_ns}
    return json.dumps({"id": post_id, "text": text, "source": "loadtest", "metadata": metadata}).encode()


@dataclass
class SendReport:
    """What a generator run really did."""

    step: str
    sent: int = 0
    failed: int = 0
    duration_s: float = 0.0
    max_behind_ms: float = 0.0
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def offered_rate(self) -> float:
        """Posts per second actually sent over the run."""
        return self.sent / self.duration_s if self.duration_s else 0.0


class LoadGenerator:
    """A confluent-kafka producer of load-test posts; one instance serves many steps."""

    def __init__(self, bootstrap: str, topic: str, texts: Iterator[str]) -> None:
        from confluent_kafka import Producer

        ensure_local(bootstrap)
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "stream-ner-loadtest",
                "linger.ms": 1,
                "acks": "all",
                "enable.idempotence": True,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._topic, self._texts = topic, texts
        self.sent_total = 0

    def run(
        self,
        step: str,
        offsets: np.ndarray,
        duration_s: float | None = None,
        origin_ns: int | None = None,
        progress: Callable[[int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> SendReport:
        """Send one post per offset (seconds after ``origin_ns``, default now); block until all are acked.

        ``duration_s``: the schedule's length, over which the offered rate is computed (default: last offset).
        """
        report = SendReport(step)
        origin_ns = origin_ns or time.time_ns()
        start = time.monotonic() - (time.time_ns() - origin_ns) / 1e9

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                report.failed += 1

        for seq, offset in enumerate(offsets):
            if stop is not None and seq % 64 == 0 and stop():
                break
            due = start + float(offset)
            while (ahead := due - time.monotonic()) > 0:
                time.sleep(ahead - _SPIN_S if ahead > 2 * _SPIN_S else 0)
            report.max_behind_ms = max(report.max_behind_ms, -ahead * 1000)
            sent_ns = time.time_ns()
            value = post_value(f"{step}-{seq}", next(self._texts), step, seq, sent_ns)
            while True:
                try:
                    self._producer.produce(
                        self._topic, value=value, key=f"{step}-{seq}", on_delivery=delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.01)
            self._producer.poll(0)
            report.sent += 1
            self.sent_total += 1
            report.per_second[int((sent_ns - origin_ns) // 1_000_000_000)] += 1
            if progress is not None and seq % 50 == 0:
                progress(seq)
        planned = duration_s if duration_s is not None else (float(offsets[-1]) if len(offsets) else 0.0)
        report.duration_s = max(time.monotonic() - start, planned)
        self._producer.flush(60)
        return report

    def close(self) -> None:
        """Deliver what is queued."""
        self._producer.flush(60)


def main(argv: list[str] | None = None) -> int:
    """Send a constant, ramped or bursty load to a local broker for a bounded time."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="raw-posts")
    parser.add_argument("--rate", type=float, required=True, help="posts/s (start rate of a ramp)")
    parser.add_argument("--duration", type=float, required=True, help="seconds (at most 3600)")
    parser.add_argument("--ramp-to", type=float, default=None, help="end rate of a linear ramp")
    parser.add_argument("--burst-rate", type=float, default=None, help="rate during bursts")
    parser.add_argument("--burst-every", type=float, default=10.0, help="seconds between burst starts")
    parser.add_argument("--burst-for", type=float, default=2.0, help="seconds a burst lasts")
    parser.add_argument("--max-count", type=int, default=1_000_000)
    parser.add_argument("--corpus", default=None, help="JSONL file or directory (default: sample posts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step", default="manual", help="step name written into each post's metadata")
    parser.add_argument(
        "--duplicates", type=float, default=0.0, help="share of posts repeating an earlier text, in [0, 1)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 3600:
        parser.error("--duration must be in (0, 3600]")
    if not 0 <= args.duplicates < 1:
        parser.error("--duplicates must be in [0, 1)")
    if args.ramp_to is not None:
        phases = schedule.ramp(args.rate, args.ramp_to, args.duration)
    elif args.burst_rate is not None:
        phases = schedule.bursts(args.rate, args.burst_rate, args.burst_every, args.burst_for, args.duration)
    else:
        phases = schedule.constant(args.rate, args.duration)
    offsets = schedule.send_offsets(phases, args.max_count)
    corpus = load_corpus(args.corpus)
    texts = with_repeats(stream(corpus.texts, args.seed), args.duplicates, args.seed)
    generator = LoadGenerator(args.bootstrap, args.topic, texts)
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(f"sending {len(offsets)} posts", total=len(offsets))
        duration = schedule.total_duration(phases)
        report = generator.run(args.step, offsets, duration, progress=lambda n: bar.update(task, completed=n))
        bar.update(task, completed=report.sent)
    print(
        f"sent {report.sent} posts in {report.duration_s:.1f} s ({report.offered_rate:.1f}/s), "
        f"{report.failed} failed, at most {report.max_behind_ms:.1f} ms behind schedule "
        f"({corpus.description}, {args.duplicates:.0%} repeated texts)"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
