"""The shape of a load-test result file, as typed dictionaries: what ``rig``, ``bare`` and the scenarios
write and what the report reads back.

A result file (``results/NAME.json``) is a ``Header`` merged with one scenario's result (``config``,
``figures``, ``steps``); ``ResultFiles`` maps each scenario name to its document type. The records are
``TypedDict``\\ s rather than dataclasses because they are JSON as written: the report reads the files back
without a conversion step, and mypy checks every key on both sides.

Sampled rows (``samples``) and per-process medians (``medians``) are keyed by process name
(``cpu_w1``, ``rss_mb_broker``, ...), so they stay plain dictionaries.
"""

# No ``from __future__ import annotations`` here: TypedDict needs its annotations evaluated to tell
# ``NotRequired`` keys apart at run time (the shape test checks the committed files against them).
from typing import Any, NotRequired, TypedDict

Sample = dict[str, Any]
"""One sampler row: ``t``, ``backlog``, ``lag``, ``cpu_machine``, ``cpu_<process>``, ``rss_mb_<process>``."""

Medians = dict[str, float | None]
"""Medians while sending: ``cpu_machine_pct``, ``cpu_<process>``, ``rss_mb_<process>``, ``cpu_others``."""


class LatencySummary(TypedDict):
    """Count, mean and percentiles of an HDR histogram, in milliseconds (``measure.summarize``)."""

    count: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class LatencySplit(TypedDict, total=False):
    """p50/p99 of send -> event built and event built -> arrival; empty when the events carry no time."""

    to_event_p50_ms: float
    to_event_p99_ms: float
    after_event_p50_ms: float
    after_event_p99_ms: float


class TimelineRow(TypedDict):
    """One second of a step: posts sent then and their latency percentiles; events that arrived then."""

    t: int
    received: int
    timed: int
    p50_ms: NotRequired[float]
    p99_ms: NotRequired[float]
    max_ms: NotRequired[float]
    sent: NotRequired[int]  # filled in by the rig from the generator's report


class MachineLoad(TypedDict):
    """Load average and machine CPU at one moment (``machine.load``)."""

    loadavg_1m: float
    cpu_pct: float


class Machine(TypedDict):
    """The machine and software a result was measured on (``machine.describe``)."""

    cpu: str
    logical_cpus: int
    memory_gb: float
    os: str
    python: str
    versions: dict[str, str | None]


class PhaseRecord(TypedDict):
    """A ``schedule.Phase`` as written."""

    duration_s: float
    start_rate: float
    end_rate: float


class VerdictRecord(TypedDict):
    """A ``search.Verdict`` with the step's steady event rate."""

    rate: float
    offered_rate: float
    sent: int
    received: int
    p99_ms: float
    backlog_slope: float
    sustained: bool
    reason: str
    received_rate_steady: float


class StepResult(TypedDict):
    """Everything measured about one step (``Rig.step``), plus what the scenario adds to tell steps apart."""

    label: str
    phases: list[PhaseRecord]
    duration_s: float
    target_rate: float
    offered_rate: float
    sent: int
    failed_sends: int
    max_behind_ms: float
    received: int
    duplicates: int
    drained: bool
    received_rate_steady: float
    worker_cpu_s: float
    posts_per_worker_cpu_s: float | None
    batches: int
    mean_batch_posts: float | None
    inference_s: float
    latency: LatencySummary
    latency_split: LatencySplit
    histogram: str
    timeline: list[TimelineRow]
    samples: list[Sample]
    sending_samples: int
    medians: Medians
    load_before: MachineLoad
    load_after: MachineLoad
    verdict: NotRequired[VerdictRecord]  # search steps
    workers: NotRequired[int]  # workers scenario
    threads: NotRequired[int]
    batch: NotRequired[int]  # batching scenario
    wait_ms: NotRequired[int]
    precision: NotRequired[str]  # precision scenario
    peer: NotRequired[str]  # peers scenario
    aggregator_lag_end: NotRequired[int]  # steps with the aggregator on: its lag when the step ended
    aggregator_catch_up_s: NotRequired[float]  # and how long after the events it took to reach it
    duplicate_share: NotRequired[float]  # share of posts repeating an earlier text (0 when absent)
    dedupe_hits: NotRequired[int]  # posts the workers served without inference (duplicate cache)
    dedupe_misses: NotRequired[int]  # posts that went through the model with the cache on


class BareFigures(TypedDict):
    """The bare runtime's figures (``bare.run``)."""

    posts_per_s: float
    median_batch_posts_per_s: float
    posts: int
    seconds: float
    cpu_pct: float
    posts_per_cpu_s: float | None
    batch_posts: int
    precision: str
    intra_op_threads: int
    model: str


class ConfigRecord(TypedDict):
    """A ``stack.WorkerConfig`` as written: the model named by kind, never by path."""

    max_batch_posts: int
    max_wait_ms: int
    precision: str
    intra_op_threads: int
    queue_max_posts: int
    model: str
    workers: NotRequired[int]
    dedupe_cache_size: NotRequired[int]


class Header(TypedDict):
    """What every result file starts with."""

    scenario: str
    quick: bool
    command: str
    started_at: str
    wall_s: float
    machine: Machine
    corpus: str
    collector: str
    limits: dict[str, float]
    durations: dict[str, float]


class ScenarioResult(TypedDict):
    """What every scenario returns: the worker configuration and its steps."""

    config: ConfigRecord
    steps: list[StepResult]


# -- maxrate -----------------------------------------------------------------------------------------------


class DuplicatesFigures(TypedDict):
    """``maxrate``'s search with a share of the posts repeating an earlier text (fresh workers and caches)."""

    duplicate_share: float
    max_sustained_posts_per_s: float | None
    to_without_duplicates: float | None  # over the max sustained rate without repeats, same run
    dedupe_hit_share_at_max: float | None  # hits / posts the workers annotated in the best step
    dedupe_hit_share_without: float | None  # the same in the best step without repeats (natural repeats)
    search: list[VerdictRecord]


class MaxrateFigures(TypedDict):
    """The headline figures of ``maxrate``."""

    bare_posts_per_s: float
    bare_runs: list[BareFigures]
    max_sustained_posts_per_s: float
    stream_to_bare: float
    pipeline_mean_batch_at_max: float | None
    bare_at_pipeline_batch: BareFigures
    stream_to_bare_at_pipeline_batch: float
    search: list[VerdictRecord]
    highest_failed_rate: float | None
    latency_at_50pct: LatencySummary
    latency_at_90pct: LatencySummary
    p99_limit_ms: float
    max_sustained_with_aggregator_posts_per_s: NotRequired[float | None]
    with_aggregator_to_workers_only: NotRequired[float | None]
    search_with_aggregator: NotRequired[list[VerdictRecord]]
    with_duplicates: NotRequired[DuplicatesFigures]


class MaxrateResult(ScenarioResult):
    """``maxrate``: the pipeline's configuration, the bare runtime's, figures and steps."""

    bare_config: ConfigRecord
    figures: MaxrateFigures


class MaxrateDoc(Header, MaxrateResult):
    """``results/maxrate.json``."""


# -- workers -----------------------------------------------------------------------------------------------


class WorkersRun(TypedDict):
    """One worker layout of ``workers``."""

    workers: int
    threads_per_worker: int
    max_sustained_posts_per_s: float | None
    search: list[VerdictRecord]
    mean_batch_posts_saturated: float | None
    throughput_posts_per_s: float
    saturated: bool
    posts_per_worker_cpu_s: float | None
    worker_cpu_pct: list[float | None]
    worker_rss_mb: list[float | None]


class WorkersFigures(TypedDict):
    """The figures of ``workers``; ``bare`` by thread count (``"1t"``, ``"2t"``)."""

    offered_posts_per_s: float
    runs: list[WorkersRun]
    bare: dict[str, BareFigures]


class WorkersResult(ScenarioResult):
    """``workers``."""

    figures: WorkersFigures


class WorkersDoc(Header, WorkersResult):
    """``results/workers.json``."""


# -- batching ----------------------------------------------------------------------------------------------


class BatchingRun(TypedDict):
    """One batch size and max wait of ``batching``."""

    max_batch_posts: int
    max_wait_ms: int
    throughput_posts_per_s: float
    latency_at_fixed_rate: LatencySummary


class BatchingFigures(TypedDict):
    """The figures of ``batching``."""

    bare_reference_posts_per_s: float
    fixed_rate_posts_per_s: float
    runs: list[BatchingRun]


class BatchingResult(ScenarioResult):
    """``batching``."""

    figures: BatchingFigures


class BatchingDoc(Header, BatchingResult):
    """``results/batching.json``."""


# -- precision ---------------------------------------------------------------------------------------------


class PrecisionRun(TypedDict):
    """One graph of ``precision``."""

    precision: str
    bare_posts_per_s: float
    throughput_posts_per_s: float
    latency_at_fixed_rate: LatencySummary
    worker_rss_mb: float | None


class PrecisionFigures(TypedDict):
    """The figures of ``precision``; ``not_shipped``: graphs the model lacks."""

    fixed_rate_posts_per_s: float | None
    runs: list[PrecisionRun]
    not_shipped: list[str]


class PrecisionResult(ScenarioResult):
    """``precision``."""

    figures: PrecisionFigures


class PrecisionDoc(Header, PrecisionResult):
    """``results/precision.json``."""


# -- soak --------------------------------------------------------------------------------------------------


class SoakFigures(TypedDict):
    """The figures of ``soak``."""

    rate_posts_per_s: float
    rate_basis: str
    duration_s: float
    rss_mb_early: float | None
    rss_mb_end: float | None
    early_at_s: float
    rss_growth_mb: float | None
    latency: LatencySummary
    sent: int
    received: int


class SoakResult(ScenarioResult):
    """``soak``."""

    figures: SoakFigures


class SoakDoc(Header, SoakResult):
    """``results/soak.json``."""


# -- aggregate ---------------------------------------------------------------------------------------------


class AggregateRun(TypedDict):
    """One drain of pre-loaded entity events by ``stream-ner aggregate`` processes (``aggregator``)."""

    label: str
    code: str  # "current", or "baseline": the aggregator of an earlier commit
    processes: int
    windows: str
    events: int
    mentions: int
    drain_s: float
    events_per_s: float
    mentions_per_s: float
    cpu_pct: list[float]  # per process, % of one core over the drain
    rss_mb: list[float]  # per process, peak
    exact: bool  # the 1-minute windows in Redis hold one post per mention generated
    records_written: float
    load_before: NotRequired[MachineLoad]


class AggregateFigures(TypedDict):
    """The figures of ``aggregate``."""

    baseline_ref: str | None
    runs: list[AggregateRun]
    one_process_events_per_s: float  # median of the one-process runs with the default windows
    speedup_vs_baseline: float | None
    two_vs_one: float


class AggregateResult(ScenarioResult):
    """``aggregate``."""

    figures: AggregateFigures


class AggregateDoc(Header, AggregateResult):
    """``results/aggregate.json``."""


# -- pinned ------------------------------------------------------------------------------------------------


class PinnedFigures(TypedDict):
    """``pinned``: the max sustained rate with the workers on CPUs of their own, without and with the
    aggregator (which runs on the other CPUs with the broker, Redis and the load generator)."""

    workers_cpus: list[int]
    others_cpus: list[int]
    workers: int
    bare_one_thread_posts_per_s: float  # the runtime alone, one intra-op thread: the searches start at 85%
    workers_only_posts_per_s: float | None
    with_aggregator_posts_per_s: float | None
    with_aggregator_to_workers_only: float | None
    at_best_with_aggregator: Medians  # CPU medians (% of one core) of the best step with the aggregator
    search: list[VerdictRecord]
    search_with_aggregator: list[VerdictRecord]


class PinnedResult(ScenarioResult):
    """``pinned``."""

    figures: PinnedFigures


class PinnedDoc(Header, PinnedResult):
    """``results/pinned.json``."""


class PeerRun(TypedDict):
    """One peer consumer's search, in the layout and on the texts of ``maxrate``."""

    peer: str  # "naive" or "spacy" (``loadtest.peers``)
    system: str  # what it runs, in words
    processes: int
    bare_one_thread: BareFigures  # its model call alone, one thread: the search starts at 85% x processes
    max_sustained_posts_per_s: float | None
    stream_to_peer: float | None  # stream-ner's max sustained rate (``maxrate``, this run) / this one
    posts_per_cpu_s_at_max: float | None  # events per CPU second of its processes at its best step
    search: list[VerdictRecord]


class PeersFigures(TypedDict):
    """``peers``: what a user would run instead, measured like stream-ner, on the same broker and texts."""

    stream_max_sustained_posts_per_s: float | None  # from ``maxrate`` in the same results directory
    stream_measured_at: str | None  # when that ``maxrate`` started (the same ``all`` run, or not)
    runs: list[PeerRun]


class PeersResult(ScenarioResult):
    """``peers``."""

    figures: PeersFigures


class PeersDoc(Header, PeersResult):
    """``results/peers.json``."""


class ProfileFigures(TypedDict):
    """``profile``: one single-threaded worker on a CPU of its own, offered more than it can do, sampled by
    py-spy over the step's middle (``loadtest.profile``)."""

    workers_cpus: list[int]
    others_cpus: list[int]
    bare_one_thread: BareFigures  # the runtime alone on one thread: the reference
    offered_posts_per_s: float
    events_per_s: float  # steady part of the step
    stream_to_bare: float  # events_per_s / bare posts/s
    worker_cpu_pct: float | None  # median while sending, % of one core (all its threads)
    posts_per_worker_cpu_s: float | None
    bare_posts_per_cpu_s: float | None
    profiled_s: float
    samples: int
    by_stage: dict[str, int]  # samples per stage, every thread
    by_thread: dict[str, dict[str, int]]  # thread -> stage -> samples
    top_frames: list[list[Any]]  # [thread, innermost Python frame, samples], most sampled first


class ProfileResult(ScenarioResult):
    """``profile``."""

    figures: ProfileFigures


class ProfileDoc(Header, ProfileResult):
    """``results/profile.json``."""


# -- a results directory -----------------------------------------------------------------------------------


class ResultFiles(TypedDict, total=False):
    """The result files of one directory, by scenario name (any subset)."""

    maxrate: MaxrateDoc
    workers: WorkersDoc
    batching: BatchingDoc
    precision: PrecisionDoc
    soak: SoakDoc
    aggregate: AggregateDoc
    pinned: PinnedDoc
    peers: PeersDoc
    profile: ProfileDoc


DOCUMENTS: dict[str, type] = {
    "maxrate": MaxrateDoc,
    "workers": WorkersDoc,
    "batching": BatchingDoc,
    "precision": PrecisionDoc,
    "soak": SoakDoc,
    "aggregate": AggregateDoc,
    "pinned": PinnedDoc,
    "peers": PeersDoc,
    "profile": ProfileDoc,
}
"""The document type of each scenario, in the order the report presents them."""


def find_step(doc: ScenarioResult | None, label: str) -> StepResult | None:
    """The step of ``doc`` with that label, if any."""
    for item in doc["steps"] if doc else []:
        if item["label"] == label:
            return item
    return None


# -- chaos soak (python -m loadtest.chaos) -------------------------------------------------------------------


class ChaosFault(TypedDict):
    """One injected fault."""

    kind: str  # worker, aggregator, broker, redis
    target: str  # w1, aggregator, broker 2, redis
    at_s: float  # seconds into the stream
    recovery_s: float | None  # until steady state again (loadtest.chaos); None: not within the timeout


class ChaosCheck(TypedDict):
    """One end-of-run check."""

    name: str
    passed: bool
    detail: str  # why it failed, or a short figure


class ChaosDoc(TypedDict):
    """``results/chaos.json``."""

    scenario: str
    started_at: str
    wall_s: float
    machine: str
    rate: float
    seconds: float
    posts: int  # acknowledged by the brokers
    events: int  # on entities, repeats included
    duplicates: int  # events beyond the first of their post
    faults: list[ChaosFault]
    checks: list[ChaosCheck]
    passed: bool
