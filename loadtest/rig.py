"""One measured set-up: a worker pool on fresh topics, with its generator, collector, lag probe and sampler.

``Rig`` is entered once per worker configuration. ``step`` offers one schedule and returns everything
measured about it as a ``schema.StepResult`` (JSON as it is written):

1. the collector starts timing the step's posts (they carry the step name);
2. the sampler starts (backlog, consumer lag, CPU and RSS of workers, broker and this process);
3. the generator sends the schedule;
4. unless ``drain=False``, the step waits (bounded) until every post sent came back as an event, and,
   with an aggregator started (``start_aggregator``), until its consumer group has no lag left on
   ``entities`` and on its by-brand topic (posts in, brand aggregates in Redis out);
5. the collector stops timing the step (later events count as late), the sampler stops, and the figures
   are assembled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
from rich.progress import Progress

from loadtest import machine, schedule
from loadtest.generate import LoadGenerator
from loadtest.measure import EventCollector, LagProbe, Sampler, encode, median_of
from loadtest.schema import Medians, PhaseRecord, Sample, StepResult
from loadtest.stack import AggregatorProcess, Broker, Topics, WorkerConfig, WorkerPool

LEAD_S = 0.2  # the first post goes out this long after the step is registered


class Rig:
    """``count`` workers with ``config`` on their own topics; a context manager."""

    def __init__(
        self,
        broker: Broker,
        scenario: str,
        config: WorkerConfig,
        count: int,
        texts: Iterator[str],
        progress: Progress,
        duplicate_share: float = 0.0,
        pinned: tuple[set[int], set[int]] | None = None,
    ) -> None:
        """``texts`` already carries ``duplicate_share`` repeats (``corpus.with_repeats``); it is recorded.

        ``pinned`` ``(workers' CPUs, everyone else's)``: the workers run on the first set only, the broker,
        the aggregator, its Redis and this process (generator, collector, probes) on the second.
        """
        self.broker, self.config, self.count = broker, config, count
        self.pinned = pinned
        self.duplicate_share = duplicate_share
        self.topics = Topics.fresh(scenario)
        self.progress = progress
        self._texts = texts
        self.pool = WorkerPool(broker.bootstrap, self.topics, config, count)
        self.collector: EventCollector | None = None
        self.generator: LoadGenerator | None = None
        self.lag: LagProbe | None = None
        self.aggregator: AggregatorProcess | None = None
        self._aggregator_lag: list[LagProbe] = []

    def start_aggregator(self) -> None:
        """From now on a ``stream-ner aggregate`` process reads the workers' events, and steps wait for it."""
        self.aggregator = AggregatorProcess.start(self.broker.bootstrap, self.topics, self.pool.log_dir)
        if self.pinned is not None:
            machine.pin(self.aggregator.proc.pid, self.pinned[1])
            machine.pin(self.aggregator.redis.pid, self.pinned[1])  # type: ignore[attr-defined]
        group = self.aggregator.group
        self._aggregator_lag = [
            LagProbe(self.broker.bootstrap, group, topic)
            for topic in (self.topics.entities, f"{group}-by-brand")
        ]

    def __enter__(self) -> Rig:
        task = self.progress.add_task(f"starting {self.count} worker(s) {self.config}", total=None)
        self.topics.create(self.broker.bootstrap)
        try:
            self.pool.start()
            if self.pinned is not None:
                workers, others = self.pinned
                for pid in self.pool.pids().values():
                    machine.pin(pid, workers)
                for other in (os.getpid(), self.broker.pid):
                    if other is not None:
                        machine.pin(other, others)
            self.collector = EventCollector(self.broker.bootstrap, self.topics.entities)
            self.collector.start()
            self.generator = LoadGenerator(self.broker.bootstrap, self.topics.raw, self._texts)
            self.lag = LagProbe(self.broker.bootstrap, self.topics.group, self.topics.raw)
        except BaseException:
            self.__exit__()
            raise
        finally:
            self.progress.remove_task(task)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.aggregator is not None:
            self.aggregator.stop()
        for probe in self._aggregator_lag:
            probe.close()
        self.pool.stop()
        for part in (self.collector, self.lag):
            if part is not None:
                part.stop() if isinstance(part, EventCollector) else part.close()
        if self.generator is not None:
            self.generator.close()
        # drop the clients, so none outlives the rig and logs its reconnects once the broker is gone
        self.collector = self.generator = self.lag = None
        self._aggregator_lag = []
        self.topics.delete(self.broker.bootstrap)

    def warm_up(self, rate: float, seconds: float) -> None:
        """An unrecorded ramp up to ``rate``: sessions, caches, connections and the broker's JIT get warm."""
        self.step("warmup", schedule.ramp(0.2 * rate, rate, seconds), sample_interval_s=1.0)

    def processes(self) -> dict[str, int]:
        """The processes whose CPU and RSS are sampled."""
        procs = self.pool.pids() | {"loadtest": os.getpid()}
        if self.aggregator is not None:
            procs["aggregate"] = self.aggregator.proc.pid
        if self.broker.pid is not None:
            procs["broker"] = self.broker.pid
        return procs

    def step(
        self,
        label: str,
        phases: list[schedule.Phase],
        *,
        drain: bool = True,
        drain_timeout_s: float | None = None,
        sample_interval_s: float = 0.5,
    ) -> StepResult:
        """Offer ``phases`` and measure; see the module docstring for the order of events."""
        assert self.collector is not None and self.generator is not None and self.lag is not None
        offsets = schedule.send_offsets(phases)
        duration = schedule.total_duration(phases)
        origin_ns = time.time_ns() + int(LEAD_S * 1e9)
        recorder = self.collector.register(label, origin_ns)  # 1.
        base = self.generator.sent_total
        collector, generator = self.collector, self.generator
        load_before = machine.load()
        cpu_before = self._worker_cpu_s()
        batches_before = self._batch_totals()
        task = self.progress.add_task(f"{label}: sending", total=len(offsets))
        with Sampler(
            self.processes(),
            backlog=lambda: generator.sent_total - base - collector.received(label),
            lag=self.lag.lag,
            interval_s=sample_interval_s,
        ) as sampler:  # 2.
            report = self.generator.run(
                label,
                offsets,
                duration,
                origin_ns,
                progress=lambda n: self.progress.update(task, completed=n),
            )  # 3.
            self.progress.update(task, completed=report.sent, description=f"{label}: draining")
            drained = (
                self._drain(label, report.sent, drain_timeout_s or max(30.0, 3 * duration))
                if drain
                else False
            )
            self.pool.check_alive()
            behind = (
                self._aggregator_catch_up(drain_timeout_s or max(30.0, 3 * duration)) if drained else None
            )
            worker_cpu_s = self._worker_cpu_s() - cpu_before
            collector.finish(label)
            done = collector.received(label)
            batches = [
                after - before for after, before in zip(self._batch_totals(), batches_before, strict=True)
            ]
        self.progress.remove_task(task)  # 5.
        if collector.error is not None:
            raise RuntimeError(f"the event collector failed: {collector.error!r}")
        rows = sampler.rows
        sending = [row for row in rows if row["t"] <= duration + LEAD_S]
        received = collector.received(label)
        arrivals = recorder.arrivals
        steady_from = int(duration * 0.3)
        steady = sum(arrivals.get(s, 0) for s in range(steady_from, int(duration)))
        steady_rate = steady / max(1, int(duration) - steady_from)
        timeline = recorder.timeline()
        for row in timeline:
            row["sent"] = report.per_second.get(int(row["t"]), 0)
        return StepResult(
            label=label,
            phases=[
                PhaseRecord(duration_s=p.duration_s, start_rate=p.start_rate, end_rate=p.end_rate)
                for p in phases
            ],
            duration_s=round(duration, 2),
            target_rate=round(len(offsets) / duration, 1) if duration else 0.0,
            offered_rate=round(report.offered_rate, 1),
            sent=report.sent,
            failed_sends=report.failed,
            max_behind_ms=round(report.max_behind_ms, 1),
            received=received,
            duplicates=collector.duplicates.get(label, 0),
            drained=drained,
            received_rate_steady=round(steady_rate, 1),
            worker_cpu_s=round(worker_cpu_s, 2),
            posts_per_worker_cpu_s=round(done / worker_cpu_s, 1) if worker_cpu_s > 0 else None,
            batches=int(batches[1]),
            mean_batch_posts=round(batches[0] / batches[1], 2) if batches[1] else None,
            inference_s=round(batches[2], 2),
            latency=recorder.summary(),
            latency_split=recorder.split(),
            histogram=encode(recorder.histogram),
            timeline=timeline,
            samples=rows,
            sending_samples=len(sending),
            medians=_medians(sending, self.processes(), os.cpu_count() or 1),
            load_before=load_before,
            load_after=machine.load(),
            duplicate_share=self.duplicate_share,
            dedupe_hits=int(batches[3]),
            dedupe_misses=int(batches[4]),
        ) | ({"aggregator_lag_end": behind[0], "aggregator_catch_up_s": behind[1]} if behind else {})

    def _batch_totals(self) -> tuple[float, ...]:
        """Posts batched, batches, inference seconds, dedupe hits and misses so far, over the workers."""
        names = (
            "batch_size_sum",
            "batch_size_count",
            "inference_seconds_sum",
            "dedupe_hits_total",
            "dedupe_misses_total",
        )
        totals = [0.0] * len(names)
        for worker in self.pool.workers:
            metrics = worker.metrics()
            for i, name in enumerate(names):
                totals[i] += metrics.get(f"stream_ner_{name}", 0.0)
        return tuple(totals)

    def _worker_cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the workers have used so far."""
        import psutil

        total = 0.0
        for pid in self.pool.pids().values():
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        return total

    def _aggregator_catch_up(self, timeout_s: float) -> tuple[int, float] | None:  # 4.
        """With an aggregator: its lag when it reached zero or the time ran out, and the seconds it took.

        The lag is read from committed offsets, which the aggregator commits every 2 s: the time is an
        upper bound, to about that.
        """
        if self.aggregator is None:
            return None
        began = time.monotonic()
        while True:
            self.aggregator.check_alive()
            lag = sum(probe.lag() for probe in self._aggregator_lag)
            waited = time.monotonic() - began
            if lag == 0 or waited > timeout_s:
                return lag, round(waited, 1)
            time.sleep(0.25)

    def _drain(self, label: str, sent: int, timeout_s: float) -> bool:  # 4.
        assert self.collector is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.collector.received(label) >= sent:
                return True
            self.pool.check_alive()
            time.sleep(0.05)
        return False


def _medians(rows: list[Sample], processes: dict[str, int], cpus: int) -> Medians:
    """Median CPU (% of one core) and RSS (MB) per process while sending, and the CPU used by others."""
    out: Medians = {"cpu_machine_pct": median_of(rows, "cpu_machine")}
    for name in processes:
        out[f"cpu_{name}"] = median_of(rows, f"cpu_{name}")
        out[f"rss_mb_{name}"] = median_of(rows, f"rss_mb_{name}")
    others = []
    for row in rows:
        ours = [row.get(f"cpu_{name}") for name in processes]
        if row.get("cpu_machine") is not None and all(v is not None for v in ours):
            others.append(max(0.0, row["cpu_machine"] * cpus - sum(ours)))  # type: ignore[arg-type]
    out["cpu_others"] = round(float(np.median(others)), 1) if others else None
    return out
