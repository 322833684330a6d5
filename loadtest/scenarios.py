"""One command per load-test scenario: ``python -m loadtest.scenarios NAME [--quick]``.

Scenarios (each writes ``results/NAME.json``; ``--quick`` writes under ``results/quick/``):

- ``maxrate``: the bare runtime's posts/s, then the maximum sustained rate of one worker (search,
  ``loadtest.search``), p50/p95/p99 at 50% and 90% of it, a burst run, the same search with the
  aggregator on (sustained also means it keeps up), the same search with ``--duplicates`` (30%) of the
  posts repeating an earlier text, and the bare runtime again.
- ``workers``: saturated throughput of 1 worker (2 threads), 1 worker (1 thread), 2 workers (1 thread each).
- ``batching``: saturated throughput and latency at a fixed rate for several batch sizes and max waits.
- ``precision``: bare and stream throughput, latency at a fixed rate, for the int8 and fp32 graphs.
- ``soak``: one worker at half its capacity for 10 minutes; its RSS after 1 minute and at the end.
- ``aggregate``: the aggregator alone draining pre-loaded entity events: events/s and mentions/s of one and
  two processes, default windows and 1 m only, next to the aggregator of an earlier commit (``aggregator``).
- ``pinned``: maxrate's search without and with the aggregator, the workers alone on half the CPUs and
  everything else on the other half: does the aggregator keep up when it does not take the workers' CPU?
- ``peers``: what a user would run instead (``loadtest.peers``: a naive transformers consumer and a spaCy
  one), maxrate's search in maxrate's layout on the same texts; their rates next to maxrate's.
- ``profile``: where a busy worker's time goes: one single-threaded worker on a CPU of its own, offered
  more than it can do, sampled by py-spy (``loadtest.profile``); its rate against the bare runtime.
- ``all``: the nine above on one broker, then ``loadtest.report`` (``--quick``: a few minutes).

A private Kafka broker is started on a free 127.0.0.1 port unless ``--bootstrap`` names a running local
one; each worker configuration runs on its own fresh topics. Every step is bounded in posts and time, so
a scenario ends by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadtest import aggregator, bare, machine, peers, schedule
from loadtest import profile as profiling
from loadtest.corpus import Corpus, load_corpus, stream, with_repeats
from loadtest.rig import Rig
from loadtest.schema import (
    AggregateResult,
    BareFigures,
    BatchingFigures,
    BatchingResult,
    BatchingRun,
    ConfigRecord,
    DuplicatesFigures,
    Header,
    MaxrateDoc,
    MaxrateFigures,
    MaxrateResult,
    PeerRun,
    PeersFigures,
    PeersResult,
    PinnedFigures,
    PinnedResult,
    PrecisionFigures,
    PrecisionResult,
    PrecisionRun,
    ProfileFigures,
    ProfileResult,
    ScenarioResult,
    SoakFigures,
    SoakResult,
    StepResult,
    VerdictRecord,
    WorkersFigures,
    WorkersResult,
    WorkersRun,
)
from loadtest.search import Limits, RateSearch, judge
from loadtest.stack import Broker, WorkerConfig

RESULTS = Path(__file__).resolve().parent / "results"
AGGREGATOR_CATCH_UP_S = 5.0
"""With the aggregator on, a step is sustained only if it has no lag left this long after the last event
(it commits every 2 s; an aggregator slower than the input would still be draining a backlog)."""
console = Console(stderr=True)


@dataclass(frozen=True)
class Durations:
    """Seconds per kind of step; the quick set keeps every scenario to tens of seconds."""

    bare: float = 10.0
    search_step: float = 15.0
    search_max_steps: int = 11
    latency: float = 30.0
    burst: float = 30.0
    saturate: float = 15.0
    fixed_rate: float = 20.0
    soak: float = 600.0
    soak_early: float = 60.0
    warmup: float = 5.0
    broker_warmup: float = 30.0


QUICK = Durations(
    bare=2.0,
    search_step=4.0,
    search_max_steps=4,
    latency=4.0,
    burst=0.0,
    saturate=4.0,
    fixed_rate=4.0,
    soak=30.0,
    soak_early=10.0,
    warmup=1.0,
    broker_warmup=5.0,
)


@dataclass
class Context:
    """What every scenario gets: the broker, the texts, options, and where results go."""

    broker: Broker
    corpus: Corpus
    corpus_arg: str | None
    durations: Durations
    limits: Limits
    seed: int
    out_dir: Path
    quick: bool
    progress: Progress
    base: WorkerConfig
    duplicate_share: float = 0.3  # of maxrate's search with repeated texts; 0: no such search

    def rig(
        self,
        scenario: str,
        config: WorkerConfig,
        count: int = 1,
        duplicates: float = 0.0,
        pinned: tuple[set[int], set[int]] | None = None,
    ) -> Rig:
        """A worker pool of ``count`` with ``config`` on fresh topics; ``duplicates``: share of repeats;
        ``pinned``: the workers' CPUs and everyone else's (``Rig``)."""
        texts = with_repeats(stream(self.corpus.texts, self.seed), duplicates, self.seed)
        return Rig(self.broker, scenario, config, count, texts, self.progress, duplicates, pinned)

    def bare(self, config: WorkerConfig) -> BareFigures:
        """The bare runtime's figures for ``config`` (model, precision, threads, batch size)."""
        task = self.progress.add_task(
            f"bare runtime {config.precision} batch {config.max_batch_posts}", total=None
        )
        try:
            return bare.measure(
                self.corpus_arg,
                config.max_batch_posts,
                config.precision,
                config.intra_op_threads,
                self.durations.bare,
                self.seed,
                config.model,
            )
        finally:
            self.progress.remove_task(task)

    def previous_maxrate(self) -> MaxrateDoc | None:
        """An earlier result of ``maxrate`` in the same results directory, if any."""
        path = self.out_dir / "maxrate.json"
        return cast(MaxrateDoc, json.loads(path.read_text())) if path.is_file() else None


# -- scenarios ---------------------------------------------------------------------------------------------


def maxrate(ctx: Context) -> MaxrateResult:
    """Bare runtime, max sustained rate of the pipeline, bare, latency at 50% / 90% of max, bursts, bare.

    The pipeline runs in the layout ``workers`` measured fastest on CPUs: one single-threaded worker per
    core (intra-op threads across cores stall on every operator whenever the broker or the generator takes
    one of them). The bare runtime is one process with ``ctx.base``'s threads (every core), measured three
    times (before, between and after the stream steps; the workers are idle meanwhile); its median is the
    reference: on a shared machine one measurement is not enough.
    """
    d = ctx.durations
    count = os.cpu_count() or 1
    pipeline = replace(ctx.base, intra_op_threads=1)
    bare_runs = [ctx.bare(ctx.base)]
    bare_before = bare_runs[0]
    search = RateSearch(start=0.85 * bare_before["posts_per_s"], growth=1.15, max_steps=d.search_max_steps)
    steps: list[StepResult] = []
    with ctx.rig("maxrate", pipeline, count) as rig:
        rig.warm_up(0.7 * bare_before["posts_per_s"], 2 * d.warmup)
        searched = run_search(ctx, rig, search, "search")
        steps += searched
        verdicts = [item["verdict"] for item in searched]
        best = search.best()
        if best is None:
            raise RuntimeError("no offered rate was sustained; see the steps above")
        bare_runs.append(ctx.bare(ctx.base))
        best_step = next(item for item in steps if "verdict" in item and item["verdict"]["rate"] == best)
        pipeline_batch = max(1, round(best_step["mean_batch_posts"] or 1))
        bare_small = ctx.bare(replace(ctx.base, max_batch_posts=pipeline_batch))
        loads = {}
        for share in (0.5, 0.9):
            rate = round(share * best, 1)
            step = rig.step(f"load-{int(share * 100)}pct", schedule.constant(rate, d.latency))
            loads[f"{int(share * 100)}pct"] = step
            steps.append(step)
            console.log(f"{share:.0%} of max ({rate:.0f}/s): {_latency_line(step)}")
        if d.burst:
            phases = schedule.bursts(0.5 * best, 1.5 * best, 10.0, 2.0, d.burst)
            step = rig.step("bursts", phases)
            steps.append(step)
            console.log(f"bursts 50% -> 150% of max: {_latency_line(step)}")
    # the same search with the aggregator reading the workers' events from the start, on fresh topics:
    # posts in, brand aggregates in Redis out
    with ctx.rig("maxrate-aggregate", pipeline, count) as rig:
        rig.start_aggregator()
        rig.warm_up(0.5 * best, 2 * d.warmup)
        with_aggregator = RateSearch(start=0.85 * best, growth=1.1, max_steps=d.search_max_steps)
        steps_agg = run_search(ctx, rig, with_aggregator, "search-agg")
        steps += steps_agg
        best_agg = with_aggregator.best()
    duplicates = _duplicates_search(ctx, pipeline, count, best_step) if ctx.duplicate_share else None
    if duplicates is not None:
        steps += duplicates[1]
    bare_runs.append(ctx.bare(ctx.base))
    bare_rate = round(statistics.median([run["posts_per_s"] for run in bare_runs]), 1)
    figures = MaxrateFigures(
        bare_posts_per_s=bare_rate,
        bare_runs=bare_runs,
        max_sustained_posts_per_s=best,
        stream_to_bare=round(best / bare_rate, 3),
        pipeline_mean_batch_at_max=best_step["mean_batch_posts"],
        bare_at_pipeline_batch=bare_small,
        stream_to_bare_at_pipeline_batch=round(best / bare_small["posts_per_s"], 3),
        search=verdicts,
        highest_failed_rate=search.lowest_failure(),
        latency_at_50pct=loads["50pct"]["latency"],
        latency_at_90pct=loads["90pct"]["latency"],
        p99_limit_ms=ctx.limits.p99_limit_ms,
        max_sustained_with_aggregator_posts_per_s=best_agg,
        with_aggregator_to_workers_only=round(best_agg / best, 3) if best_agg else None,
        search_with_aggregator=[item["verdict"] for item in steps_agg if "verdict" in item],
    )
    if duplicates is not None:
        figures["with_duplicates"] = duplicates[0]
    console.log(f"with the aggregator on: max sustained {best_agg}/s (workers only: {best:.0f}/s)")
    console.log(
        f"max sustained {best:.0f}/s vs bare {bare_rate:.0f}/s: {best / bare_rate:.0%} "
        f"(bare runs {', '.join(str(run['posts_per_s']) for run in bare_runs)})"
    )
    return MaxrateResult(
        config=describe_config(pipeline, workers=count),
        bare_config=describe_config(ctx.base),
        figures=figures,
        steps=steps,
    )


def _duplicates_search(
    ctx: Context, pipeline: WorkerConfig, count: int, without: StepResult
) -> tuple[DuplicatesFigures, list[StepResult]]:
    """The max sustained rate when ``ctx.duplicate_share`` of the posts repeat an earlier text.

    Fresh topics and workers (so their duplicate caches start empty); the search starts at the rate
    sustained without repeats (``without``, that search's best step). Returns its figures and its steps.
    """
    share, best = ctx.duplicate_share, without["verdict"]["rate"]
    tag = f"dup{share * 100:.0f}"
    with ctx.rig(f"maxrate-{tag}", pipeline, count, duplicates=share) as rig:
        rig.warm_up(0.7 * best, 2 * ctx.durations.warmup)
        search = RateSearch(start=best, growth=1.15, max_steps=ctx.durations.search_max_steps)
        steps = run_search(ctx, rig, search, f"search-{tag}")
    found = search.best()
    at_best = next((s for s in steps if found is not None and s["verdict"]["rate"] == found), None)
    console.log(f"with {share:.0%} repeated texts: max sustained {found}/s (without: {best:.0f}/s)")
    figures = DuplicatesFigures(
        duplicate_share=share,
        max_sustained_posts_per_s=found,
        to_without_duplicates=round(found / best, 3) if found else None,
        dedupe_hit_share_at_max=_hit_share(at_best),
        dedupe_hit_share_without=_hit_share(without),
        search=[item["verdict"] for item in steps if "verdict" in item],
    )
    return figures, steps


def _hit_share(step: StepResult | None) -> float | None:
    """The share of a step's posts the workers served from their duplicate caches."""
    hits = step.get("dedupe_hits", 0) if step else 0
    served = hits + (step.get("dedupe_misses", 0) if step else 0)
    return round(hits / served, 3) if served else None


def run_search(ctx: Context, rig: Rig, search: RateSearch, prefix: str) -> list[StepResult]:
    """Run ``search`` to its end on ``rig``; returns its steps, each with its ``verdict``."""
    steps: list[StepResult] = []
    while (rate := search.next_rate()) is not None:
        rate = round(rate, 1)
        step = rig.step(
            f"{prefix}-{len(steps) + 1}-{rate:g}", schedule.constant(rate, ctx.durations.search_step)
        )
        verdict = _judge(step, rate, ctx.limits)
        search.record(rate, verdict["sustained"])
        steps.append(step | {"verdict": verdict})
        console.log(f"{prefix}: offered {rate:.0f}/s: {verdict['reason']} (p99 {verdict['p99_ms']:.0f} ms)")
    return steps


def workers(ctx: Context) -> WorkersResult:
    """Max sustained rate and saturated throughput of 1 worker x 2 threads, 1 x 1 and 2 x 1 (two cores).

    The search starts at the bare runtime's rate and takes at most ``search_max_steps - 3`` steps;
    the saturated step then offers 2.5x the bare runtime (a backlog being caught up).
    """
    d = ctx.durations
    layouts = [(1, 2), (2, 1)] if ctx.quick else [(1, 2), (1, 1), (2, 1)]
    bares = {threads: ctx.bare(replace(ctx.base, intra_op_threads=threads)) for threads in (2, 1)}
    offered = 2.5 * bares[2]["posts_per_s"]  # well above what two cores can do, for every layout
    runs: list[WorkersRun] = []
    steps: list[StepResult] = []
    for count, threads in layouts:
        config = replace(ctx.base, intra_op_threads=threads)
        with ctx.rig("workers", config, count) as rig:
            rig.warm_up(0.5 * bares[threads]["posts_per_s"], d.warmup)
            search = RateSearch(
                start=bares[2]["posts_per_s"],
                growth=1.2,
                resolution=0.06,
                max_steps=max(2, d.search_max_steps - 3),
            )
            searched = run_search(ctx, rig, search, f"search-{count}w-{threads}t")
            step = rig.step(
                f"saturate-{count}w-{threads}t", schedule.constant(offered, d.saturate), drain=False
            )
        steps += [item | {"workers": count, "threads": threads} for item in searched]
        steps.append(step | {"workers": count, "threads": threads})
        runs.append(
            WorkersRun(
                workers=count,
                threads_per_worker=threads,
                max_sustained_posts_per_s=search.best(),
                search=[item["verdict"] for item in searched if "verdict" in item],
                mean_batch_posts_saturated=step["mean_batch_posts"],
                throughput_posts_per_s=step["received_rate_steady"],
                saturated=step["received_rate_steady"] < 0.95 * step["offered_rate"],
                posts_per_worker_cpu_s=step["posts_per_worker_cpu_s"],
                worker_cpu_pct=[step["medians"].get(f"cpu_w{i + 1}") for i in range(count)],
                worker_rss_mb=[step["medians"].get(f"rss_mb_w{i + 1}") for i in range(count)],
            )
        )
        console.log(
            f"{count} worker(s) x {threads} thread(s): max sustained {search.best()} posts/s, "
            f"saturated {step['received_rate_steady']:.0f} posts/s"
        )
    figures = WorkersFigures(
        offered_posts_per_s=round(offered, 1),
        runs=runs,
        bare={f"{t}t": b for t, b in bares.items()},
    )
    return WorkersResult(config=describe_config(ctx.base), figures=figures, steps=steps)


def batching(ctx: Context) -> BatchingResult:
    """Batch size and max wait: saturated throughput and latency at one fixed rate for each setting."""
    d = ctx.durations
    settings = [(32, 20), (64, 20), (128, 20), (256, 20), (256, 5), (256, 50)]
    if ctx.quick:
        settings = [(32, 20), (256, 20)]
    reference = ctx.bare(ctx.base)["posts_per_s"]
    fixed = round(0.4 * reference, 1)
    runs: list[BatchingRun] = []
    steps: list[StepResult] = []
    for batch, wait in settings:
        config = replace(ctx.base, max_batch_posts=batch, max_wait_ms=wait)
        with ctx.rig("batching", config) as rig:
            rig.warm_up(0.5 * reference, d.warmup)
            latency = rig.step(f"fixed-b{batch}-w{wait}", schedule.constant(fixed, d.fixed_rate))
            saturate = rig.step(
                f"saturate-b{batch}-w{wait}", schedule.constant(1.5 * reference, d.saturate), drain=False
            )
        steps += [latency | {"batch": batch, "wait_ms": wait}, saturate | {"batch": batch, "wait_ms": wait}]
        runs.append(
            BatchingRun(
                max_batch_posts=batch,
                max_wait_ms=wait,
                throughput_posts_per_s=saturate["received_rate_steady"],
                latency_at_fixed_rate=latency["latency"],
            )
        )
        console.log(
            f"batch {batch}, wait {wait} ms: {saturate['received_rate_steady']:.0f} posts/s saturated; "
            f"at {fixed:.0f}/s {_latency_line(latency)}"
        )
    figures = BatchingFigures(bare_reference_posts_per_s=reference, fixed_rate_posts_per_s=fixed, runs=runs)
    return BatchingResult(config=describe_config(ctx.base), figures=figures, steps=steps)


def precision(ctx: Context) -> PrecisionResult:
    """int8 against fp32 (when the shipped model has the fp32 graph): bare, saturated, fixed-rate latency."""
    from stream_ner.model import artifact, runtime

    d = ctx.durations
    root = Path(ctx.base.model) if ctx.base.model else runtime.DEFAULT_PATH
    available = [p for p in ("int8", "fp32") if (root / artifact.graph_name(p)).is_file()]
    runs: list[PrecisionRun] = []
    steps: list[StepResult] = []
    fixed: float | None = None
    for name in available:
        config = replace(ctx.base, precision=name)
        bare_figures = ctx.bare(config)
        fixed = fixed or round(0.4 * bare_figures["posts_per_s"], 1)
        with ctx.rig("precision", config) as rig:
            rig.warm_up(0.5 * bare_figures["posts_per_s"], d.warmup)
            latency = rig.step(f"fixed-{name}", schedule.constant(fixed, d.fixed_rate))
            saturate = rig.step(
                f"saturate-{name}",
                schedule.constant(1.5 * bare_figures["posts_per_s"], d.saturate),
                drain=False,
            )
        steps += [latency | {"precision": name}, saturate | {"precision": name}]
        runs.append(
            PrecisionRun(
                precision=name,
                bare_posts_per_s=bare_figures["posts_per_s"],
                throughput_posts_per_s=saturate["received_rate_steady"],
                latency_at_fixed_rate=latency["latency"],
                worker_rss_mb=saturate["medians"].get("rss_mb_w1"),
            )
        )
        console.log(
            f"{name}: bare {bare_figures['posts_per_s']:.0f}/s, "
            f"stream {saturate['received_rate_steady']:.0f}/s; "
            f"at {fixed:.0f}/s {_latency_line(latency)}"
        )
    missing = sorted({"int8", "fp32"} - set(available))
    figures = PrecisionFigures(fixed_rate_posts_per_s=fixed, runs=runs, not_shipped=missing)
    return PrecisionResult(config=describe_config(ctx.base), figures=figures, steps=steps)


def soak(ctx: Context) -> SoakResult:
    """One worker at half its max sustained rate (from ``maxrate``, else 45% of bare) for the soak time."""
    d = ctx.durations
    earlier = ctx.previous_maxrate()
    if earlier is not None:
        rate = round(0.5 * earlier["figures"]["max_sustained_posts_per_s"], 1)
        basis = "50% of the max sustained rate measured by maxrate"
    else:
        rate = round(0.45 * ctx.bare(ctx.base)["posts_per_s"], 1)
        basis = "45% of the bare runtime (no maxrate result found)"
    with ctx.rig("soak", ctx.base) as rig:
        rig.warm_up(rate, d.warmup)
        step = rig.step("soak", schedule.constant(rate, d.soak), sample_interval_s=2.0)
    rss = [(row["t"], row["rss_mb_w1"]) for row in step["samples"] if row.get("rss_mb_w1") is not None]
    early = _rss_near(rss, d.soak_early)
    late = _rss_near(rss, d.soak)
    figures = SoakFigures(
        rate_posts_per_s=rate,
        rate_basis=basis,
        duration_s=d.soak,
        rss_mb_early=early,
        rss_mb_end=late,
        early_at_s=d.soak_early,
        rss_growth_mb=round(late - early, 1) if early is not None and late is not None else None,
        latency=step["latency"],
        sent=step["sent"],
        received=step["received"],
    )
    console.log(f"soak at {rate:.0f}/s: worker RSS {early} MB at {d.soak_early:.0f} s, {late} MB at the end")
    return SoakResult(config=describe_config(ctx.base), figures=figures, steps=[step])


def aggregate(ctx: Context) -> AggregateResult:
    """The aggregator alone on pre-loaded entity events: 1 vs 2 processes, windows, a baseline commit."""
    figures, _ = aggregator.measure(ctx.broker.bootstrap, ctx.quick)
    return AggregateResult(config=describe_config(ctx.base), figures=figures, steps=[])


def pinned(ctx: Context) -> PinnedResult:
    """Does the aggregator keep up when it does not share the workers' CPUs?

    On a machine this small the aggregator competes with the workers for CPU, so ``maxrate``'s rate with
    the aggregator on measures the CPU it takes as much as whether it keeps up. Here one single-threaded
    worker per CPU of the first half runs there alone, and everything else (broker, aggregator, its Redis,
    load generator and measuring consumers) on the other half; the same search runs without and then with
    the aggregator, on fresh topics each, from the same start (85% of the bare runtime on one thread, per
    worker). If it keeps up, both find the same rate.
    """
    d = ctx.durations
    workers_cpus, others_cpus = machine.cpu_halves()
    config = replace(ctx.base, intra_op_threads=1)
    count = len(workers_cpus)
    bare_rate = ctx.bare(config)["posts_per_s"]  # one thread: about what one worker does on its CPU
    start = 0.85 * bare_rate * count
    everything = workers_cpus | others_cpus
    try:
        with ctx.rig("pinned", config, count, pinned=(workers_cpus, others_cpus)) as rig:
            rig.warm_up(start, 2 * d.warmup)
            alone = RateSearch(start=start, growth=1.15, max_steps=d.search_max_steps)
            steps = run_search(ctx, rig, alone, "search")
        best = alone.best()
        with ctx.rig("pinned-aggregate", config, count, pinned=(workers_cpus, others_cpus)) as rig:
            rig.start_aggregator()
            rig.warm_up(start, 2 * d.warmup)
            together = RateSearch(start=start, growth=1.15, max_steps=d.search_max_steps)
            steps_agg = run_search(ctx, rig, together, "search-agg")
        best_agg = together.best()
    finally:
        machine.pin(os.getpid(), everything)
        if ctx.broker.pid is not None:
            machine.pin(ctx.broker.pid, everything)
    at_best = next((s for s in steps_agg if s["verdict"]["rate"] == best_agg), None)
    console.log(f"pinned: workers only {best}/s, with the aggregator {best_agg}/s")
    figures = PinnedFigures(
        workers_cpus=sorted(workers_cpus),
        others_cpus=sorted(others_cpus),
        workers=count,
        bare_one_thread_posts_per_s=bare_rate,
        workers_only_posts_per_s=best,
        with_aggregator_posts_per_s=best_agg,
        with_aggregator_to_workers_only=round(best_agg / best, 3) if best and best_agg else None,
        at_best_with_aggregator=at_best["medians"] if at_best else {},
        search=[item["verdict"] for item in steps if "verdict" in item],
        search_with_aggregator=[item["verdict"] for item in steps_agg if "verdict" in item],
    )
    return PinnedResult(
        config=describe_config(config, workers=count), figures=figures, steps=steps + steps_agg
    )


PEER_SYSTEMS = {
    "naive": "confluent-kafka consumer, transformers token-classification pipeline per message, "
    "this model's weights in PyTorch fp32",
    "spacy": "confluent-kafka consumer, spaCy en_core_web_sm nlp.pipe per batch of up to {batch} messages",
}


def peers_scenario(ctx: Context) -> PeersResult:
    """The peers' max sustained rates, each found as ``maxrate`` finds stream-ner's.

    Same broker, texts, layout (one single-threaded process per core, one consumer group), steps and
    verdicts as ``maxrate``; each search starts at 85% of the peer's own model call alone on one thread,
    times the processes. The ratio is against ``maxrate`` in the same results directory (``all`` runs it
    first, so both come from one run).
    """
    d = ctx.durations
    count = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="stream-ner-peer-") as scratch:
        task = ctx.progress.add_task("the naive peer's checkpoint, from the model's fp32 graph", total=None)
        checkpoint = peers.prepare(ctx.base.model, Path(scratch))
        ctx.progress.remove_task(task)
        stream_run = ctx.previous_maxrate()
        stream_best = stream_run["figures"]["max_sustained_posts_per_s"] if stream_run else None
        runs: list[PeerRun] = []
        steps: list[StepResult] = []
        for peer in peers.PEERS:
            config = replace(ctx.base, intra_op_threads=1, peer=peer, peer_checkpoint=str(checkpoint))
            task = ctx.progress.add_task(f"the {peer} peer's model call alone", total=None)
            alone = peers.measure_bare(
                peer, ctx.corpus_arg, 1, d.bare, ctx.seed, config.max_batch_posts, checkpoint
            )
            ctx.progress.remove_task(task)
            start = 0.85 * alone["posts_per_s"] * count
            with ctx.rig(f"peer-{peer}", config, count) as rig:
                rig.warm_up(0.7 * start, 2 * d.warmup)
                search = RateSearch(start=start, growth=1.15, max_steps=d.search_max_steps)
                searched = run_search(ctx, rig, search, f"search-{peer}")
            best = search.best()
            at_best = next((s for s in searched if best is not None and s["verdict"]["rate"] == best), None)
            steps += [item | {"peer": peer} for item in searched]
            runs.append(
                PeerRun(
                    peer=peer,
                    system=PEER_SYSTEMS[peer].format(batch=config.max_batch_posts),
                    processes=count,
                    bare_one_thread=alone,
                    max_sustained_posts_per_s=best,
                    stream_to_peer=round(stream_best / best, 2) if stream_best and best else None,
                    posts_per_cpu_s_at_max=at_best["posts_per_worker_cpu_s"] if at_best else None,
                    search=[item["verdict"] for item in searched],
                )
            )
            console.log(f"{peer} peer: max sustained {best}/s (stream-ner: {stream_best}/s)")
    figures = PeersFigures(
        stream_max_sustained_posts_per_s=stream_best,
        stream_measured_at=stream_run["started_at"] if stream_run else None,
        runs=runs,
    )
    return PeersResult(
        config=describe_config(replace(ctx.base, intra_op_threads=1), workers=count),
        figures=figures,
        steps=steps,
    )


def profile(ctx: Context) -> ProfileResult:
    """Where a busy worker's time goes, and how close it comes to the bare runtime with a CPU of its own.

    One single-threaded worker runs alone on the first half of the CPUs (everything else on the other
    half, as in ``pinned``), offered 1.5x the one-thread bare runtime for ``durations.latency`` seconds
    (a backlog: it never waits for posts). py-spy samples it over the middle 60% of the step.
    """
    d = ctx.durations
    workers_cpus, others_cpus = machine.cpu_halves()
    config = replace(ctx.base, intra_op_threads=1)
    alone = ctx.bare(config)
    offered = round(1.5 * alone["posts_per_s"], 1)
    seconds = 0.6 * d.latency
    try:
        with ctx.rig("profile", config, 1, pinned=({min(workers_cpus)}, others_cpus)) as rig:
            rig.warm_up(0.7 * alone["posts_per_s"], 2 * d.warmup)
            pid = rig.pool.pids()["w1"]
            with profiling.Recording(pid, seconds, delay_s=0.25 * d.latency) as recording:
                step = rig.step("saturate", schedule.constant(offered, d.latency), drain=False)
            folded = recording.folded()
    finally:
        everything = workers_cpus | others_cpus
        machine.pin(os.getpid(), everything)
        if ctx.broker.pid is not None:
            machine.pin(ctx.broker.pid, everything)
    rate = step["received_rate_steady"]
    console.log(
        f"profile: {rate:.0f} events/s against {alone['posts_per_s']:.0f} bare on one thread "
        f"({rate / alone['posts_per_s']:.0%}); {folded['samples']} samples"
    )
    figures = ProfileFigures(
        workers_cpus=[min(workers_cpus)],
        others_cpus=sorted(others_cpus),
        bare_one_thread=alone,
        offered_posts_per_s=offered,
        events_per_s=rate,
        stream_to_bare=round(rate / alone["posts_per_s"], 3),
        worker_cpu_pct=step["medians"].get("cpu_w1"),
        posts_per_worker_cpu_s=step["posts_per_worker_cpu_s"],
        bare_posts_per_cpu_s=alone["posts_per_cpu_s"],
        profiled_s=round(seconds, 1),
        samples=folded["samples"],
        by_stage=folded["by_stage"],
        by_thread=folded["by_thread"],
        top_frames=[list(row) for row in folded["top_frames"]],
    )
    return ProfileResult(config=describe_config(config, workers=1), figures=figures, steps=[step])


SCENARIOS: dict[str, Callable[[Context], ScenarioResult]] = {
    "maxrate": maxrate,
    "workers": workers,
    "batching": batching,
    "precision": precision,
    "soak": soak,
    "aggregate": aggregate,
    "pinned": pinned,
    "peers": peers_scenario,
    "profile": profile,
}


# -- internals -----------------------------------------------------------------------------------------------


def describe_config(config: WorkerConfig, workers: int | None = None) -> ConfigRecord:
    """The worker settings for a result file: the model named by kind, never by path."""
    record = ConfigRecord(
        max_batch_posts=config.max_batch_posts,
        max_wait_ms=config.max_wait_ms,
        precision=config.precision,
        intra_op_threads=config.intra_op_threads,
        queue_max_posts=config.queue_max_posts,
        model="custom artifact" if config.model else "shipped default",
        dedupe_cache_size=config.dedupe_cache_size,
    )
    if workers is not None:
        record["workers"] = workers
    return record


def _judge(step: StepResult, rate: float, limits: Limits) -> VerdictRecord:
    during = [
        row for row in step["samples"] if row["t"] <= step["duration_s"] and row.get("backlog") is not None
    ]
    verdict = judge(
        rate,
        step["offered_rate"],
        step["sent"],
        step["received"],
        step["latency"]["p99_ms"],
        [row["t"] for row in during],
        [row["backlog"] for row in during],
        limits,
    )
    sustained, reason = verdict.sustained, verdict.reason
    if "aggregator_catch_up_s" in step and sustained:
        behind, took = step.get("aggregator_lag_end", 0), step["aggregator_catch_up_s"]
        if behind or took > AGGREGATOR_CATCH_UP_S:
            sustained = False
            reason = (
                f"aggregator behind: lag {behind} after {took:.0f} s (limit {AGGREGATOR_CATCH_UP_S:.0f} s)"
            )
        else:
            reason += f"; aggregator caught up in {took:.1f} s"
    return VerdictRecord(
        rate=verdict.rate,
        offered_rate=verdict.offered_rate,
        sent=verdict.sent,
        received=verdict.received,
        p99_ms=verdict.p99_ms,
        backlog_slope=verdict.backlog_slope,
        sustained=sustained,
        reason=reason,
        received_rate_steady=step["received_rate_steady"],
    )


def _latency_line(step: StepResult) -> str:
    lat = step["latency"]
    return f"p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms"


def _rss_near(rss: list[tuple[float, float]], at_s: float, window_s: float = 5.0) -> float | None:
    near = [value for t, value in rss if abs(t - at_s) <= window_s]
    if not near and rss:
        near = [min(rss, key=lambda pair: abs(pair[0] - at_s))[1]]
    return round(statistics.median(near), 1) if near else None


def dump(document: Mapping[str, object]) -> str:
    """JSON with one line per innermost object or list: readable, diffable, and small."""
    text = json.dumps(document, indent=1, ensure_ascii=False)
    return _INNERMOST.sub(lambda m: re.sub(r"\s*\n\s*", " ", m.group(0)), text) + "\n"


_INNERMOST = re.compile(r"[{\[][^{}\[\]]*[}\]]")


def warm_broker(ctx: Context, rate: float = 40.0) -> None:
    """Unrecorded traffic through a worker before the first scenario.

    A freshly started broker spends most of a core on JIT compilation for its first tens of seconds;
    without this, that CPU lands on the first measured steps.
    """
    console.log(f"warming the broker up: {ctx.durations.broker_warmup:.0f} s at up to {rate:.0f} posts/s")
    with ctx.rig("warmup", ctx.base) as rig:
        rig.warm_up(rate, ctx.durations.broker_warmup)


def run(names: list[str], args: argparse.Namespace) -> list[Path]:
    """Run the named scenarios on one broker; write one JSON each; returns the paths written."""
    out_dir = Path(args.out) if args.out else (RESULTS / "quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.corpus)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    written = []
    broker = Broker.use(args.bootstrap) if args.bootstrap else None
    with Progress(*columns, console=console, transient=True) as progress:
        if broker is None:
            task = progress.add_task("starting a local Kafka broker", total=None)
            broker = Broker.start()
            progress.remove_task(task)
        try:
            ctx = Context(
                broker,
                corpus,
                args.corpus,
                QUICK if args.quick else Durations(),
                Limits(p99_limit_ms=args.p99_limit_ms),
                args.seed,
                out_dir,
                args.quick,
                progress,
                WorkerConfig(model=args.model),
                args.duplicates,
            )
            if broker.pid is not None:  # a broker started here: its JIT is cold
                warm_broker(ctx)
            for name in names:
                began, started_at = time.monotonic(), datetime.now(UTC)
                console.rule(f"scenario {name}")
                result = SCENARIOS[name](ctx)
                header = Header(
                    scenario=name,
                    quick=args.quick,
                    command=f"python -m loadtest.scenarios {name}{' --quick' if args.quick else ''}",
                    started_at=started_at.isoformat(timespec="seconds"),
                    wall_s=round(time.monotonic() - began, 1),
                    machine=machine.describe(),
                    corpus=corpus.description,
                    collector="poll",  # events timed as soon as the measuring consumer has them
                    limits=asdict(ctx.limits),
                    durations=asdict(ctx.durations),
                )
                path = out_dir / f"{name}.json"
                path.write_text(dump({**header, **result}))
                written.append(path)
                console.log(f"{name}: done in {header['wall_s']:.0f} s")
        finally:
            broker.stop()
    return written


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.scenarios", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long steps; results under results/quick/"
    )
    parser.add_argument(
        "--corpus", default=None, help="JSONL file or directory of posts (default: env, samples)"
    )
    parser.add_argument("--model", default=None, help="model artifact directory (default: shipped)")
    parser.add_argument("--bootstrap", default=None, help="a running local broker (default: start one)")
    parser.add_argument("--out", default=None, help="results directory (default: loadtest/results)")
    parser.add_argument("--p99-limit-ms", type=float, default=1000.0, help="p99 a sustained step stays under")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.3,
        help="share of repeated texts in maxrate's extra search, in [0, 1); 0 skips it (default 0.3)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.duplicates < 1:
        parser.error("--duplicates must be in [0, 1)")
    # SIGTERM unwinds like Ctrl-C, so the workers and the broker this run started are stopped too
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    began = time.monotonic()
    written = run(names, args)
    if args.scenario == "all":
        from loadtest import report

        report.main(["--results", str(written[0].parent)])
    console.log(f"wrote {', '.join(p.name for p in written)} in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
