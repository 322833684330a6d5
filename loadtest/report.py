"""The benchmark report: PNG plots and ``RESULTS.md`` regenerated from the scenario JSON files.

``python -m loadtest.report`` reads ``loadtest/results/*.json`` (any subset of the scenarios), draws the
plots next to them and writes ``loadtest/RESULTS.md``; with ``--results DIR`` it reads DIR and writes
``DIR/RESULTS.md``. Nothing is measured here: the report is a pure function of the result files.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from loadtest.measure import cdf, decode

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DPI = 72


ORDER = ("maxrate", "workers", "batching", "precision", "soak")


def load(results: Path) -> dict[str, dict[str, Any]]:
    """Every scenario result in ``results``, by scenario name, in the order of the scenarios."""
    docs = {}
    for path in results.glob("*.json"):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "scenario" in doc:
            docs[doc["scenario"]] = doc
    return dict(sorted(docs.items(), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else 99))


def step(doc: dict[str, Any] | None, label: str) -> dict[str, Any] | None:
    """The step of ``doc`` with that label."""
    for item in (doc or {}).get("steps", []):
        if item["label"] == label:
            return dict(item)
    return None


# -- plots -------------------------------------------------------------------------------------------------


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def plot_latency_over_time(maxrate: dict[str, Any], path: Path) -> bool:
    """Per-second p50/p99 (by send time) and sent/received per second of the load and burst steps."""
    steps = [s for s in (step(maxrate, n) for n in ("load-50pct", "load-90pct", "bursts")) if s]
    if not steps:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(steps), figsize=(3.2 * len(steps), 4.4), squeeze=False, sharex="col")
    for col, item in enumerate(steps):
        rows = [r for r in item["timeline"] if r["t"] >= 0]
        t = [r["t"] for r in rows if "p50_ms" in r]
        top, bottom = axes[0][col], axes[1][col]
        top.plot(t, [r["p50_ms"] for r in rows if "p50_ms" in r], label="p50")
        top.plot(t, [r["p99_ms"] for r in rows if "p99_ms" in r], label="p99")
        top.plot(t, [r["max_ms"] for r in rows if "max_ms" in r], label="max", alpha=0.4)
        top.set_yscale("log")
        top.set_title(f"{item['label']} ({item['target_rate']:.0f}/s offered)")
        bottom.plot([r["t"] for r in rows], [r.get("sent", 0) for r in rows], label="sent/s")
        bottom.plot([r["t"] for r in rows], [r["received"] for r in rows], label="events/s")
        samples = [r for r in item["samples"] if r.get("backlog") is not None]
        twin = bottom.twinx()
        twin.plot(
            [r["t"] - 0.2 for r in samples], [r["backlog"] for r in samples], color="grey", alpha=0.5, lw=0.8
        )
        twin.set_ylabel("backlog (posts)", color="grey")
        bottom.set_xlabel("seconds since step start")
        if col == 0:
            top.set_ylabel("end-to-end latency (ms)")
            bottom.set_ylabel("posts per second")
            top.legend(loc="upper left")
            bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_latency_cdf(docs: dict[str, dict[str, Any]], path: Path) -> bool:
    """Latency against percentile ("nines" axis) for the load steps, bursts and the soak."""
    curves = []
    for name, label in (
        ("maxrate", "load-50pct"),
        ("maxrate", "load-90pct"),
        ("maxrate", "bursts"),
        ("soak", "soak"),
    ):
        item = step(docs.get(name), label)
        if item and item["latency"]["count"]:
            curves.append((f"{label} ({item['target_rate']:.0f}/s)", cdf(decode(item["histogram"]))))
    if not curves:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, points in curves:
        xs = [-math.log10(max(1e-6, 1 - p / 100)) for p, _ in points]
        ax.plot(xs, [v for _, v in points], label=label)
    ticks = [0, 1, 2, 3, 4]
    ax.set_xticks(ticks, ["p0", "p90", "p99", "p99.9", "p99.99"])
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("latency distribution (HDR histograms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_workers(workers: dict[str, Any], path: Path) -> bool:
    """Max sustained rate and saturated throughput per worker layout, with the bare runtime for reference."""
    runs = workers["figures"]["runs"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    names = [
        f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}\n× {r['threads_per_worker']} thread"
        for r in runs
    ]
    x = list(range(len(runs)))
    if all(r.get("max_sustained_posts_per_s") for r in runs):
        sustained = ax.bar(
            [i - 0.2 for i in x],
            [r["max_sustained_posts_per_s"] for r in runs],
            0.4,
            label="max sustained rate",
        )
        ax.bar_label(sustained, fmt="%.0f")
        saturated = ax.bar(
            [i + 0.2 for i in x],
            [r["throughput_posts_per_s"] for r in runs],
            0.4,
            label="saturated (backlog)",
        )
    else:
        saturated = ax.bar(x, [r["throughput_posts_per_s"] for r in runs], 0.6, label="saturated (backlog)")
    ax.bar_label(saturated, fmt="%.0f")
    ax.set_xticks(x, names)
    bare = workers["figures"]["bare"]
    ax.axhline(bare["2t"]["posts_per_s"], color="tab:red", ls="--", label="bare runtime, 2 threads")
    ax.axhline(bare["1t"]["posts_per_s"], color="tab:orange", ls=":", label="bare runtime, 1 thread")
    ax.set_ylabel("posts/s")
    ax.set_title("throughput against workers (2 cores)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_search(maxrate: dict[str, Any], path: Path) -> bool:
    """Offered rate against events/s in each search step, sustained or not."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for v in maxrate["figures"]["search"]:
        color = "tab:green" if v["sustained"] else "tab:red"
        ax.scatter(v["rate"], v["received_rate_steady"], color=color, zorder=3)
        ax.annotate(
            f"p99 {v['p99_ms']:.0f}",
            (v["rate"], v["received_rate_steady"]),
            fontsize=6,
            xytext=(3, -8),
            textcoords="offset points",
        )
    top = max(v["rate"] for v in maxrate["figures"]["search"]) * 1.1
    ax.plot([0, top], [0, top], color="grey", lw=0.8, label="events = offered")
    ax.axhline(maxrate["figures"]["bare_posts_per_s"], color="tab:blue", ls="--", label="bare runtime")
    ax.axvline(
        maxrate["figures"]["max_sustained_posts_per_s"], color="tab:green", ls=":", label="max sustained"
    )
    ax.set_xlabel("offered posts/s")
    ax.set_ylabel("events/s (steady part of the step)")
    ax.set_title("max sustainable rate search (green: sustained)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_soak(soak: dict[str, Any], path: Path) -> bool:
    """Worker RSS and per-10-s p99 over the soak."""
    item = soak["steps"][0]
    rss = [(r["t"], r["rss_mb_w1"]) for r in item["samples"] if r.get("rss_mb_w1") is not None]
    if not rss:
        return False
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.0), sharex=True)
    top.plot([t for t, _ in rss], [v for _, v in rss], color="tab:purple")
    top.set_ylabel("worker RSS (MB)")
    top.set_ylim(0, max(v for _, v in rss) * 1.2)
    top.set_title(f"soak at {soak['figures']['rate_posts_per_s']:.0f} posts/s")
    timed = [r for r in item["timeline"] if "p99_ms" in r]
    bottom.plot([r["t"] for r in timed], [r["p99_ms"] for r in timed], lw=0.6, label="p99 per second")
    bottom.plot([r["t"] for r in timed], [r["p50_ms"] for r in timed], lw=0.6, label="p50 per second")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


# -- markdown ----------------------------------------------------------------------------------------------


def _ms(summary: dict[str, float]) -> str:
    keys = ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
    return " | ".join(f"{summary[k]:.0f}" for k in keys)


def _num(value: float | None, fmt: str = ".0f") -> str:
    return "–" if value is None else format(value, fmt)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} s"


QUIET_OTHERS_PCT = 10.0  # median CPU of work outside the test below which the machine counts as quiet


def _noise(docs: dict[str, dict[str, Any]]) -> str:
    loads, others = [], []
    for doc in docs.values():
        for item in doc.get("steps", []):
            loads.append(item["load_before"]["loadavg_1m"])
            if item["medians"].get("cpu_others") is not None:
                others.append(item["medians"]["cpu_others"])
    if not loads:
        return ""
    other = statistics.median(others) if others else 0.0
    verdict = (
        "The machine was otherwise quiet during the runs."
        if other < QUIET_OTHERS_PCT
        else "The machine was shared with other work running at the same time."
    )
    return (
        f"{verdict} Load average (1 min) at the start of the steps: median {statistics.median(loads):.1f}, "
        f"range {min(loads):.1f}–{max(loads):.1f}. CPU used by processes outside the test (other work on "
        f"the machine, system threads), median over steps: {other:.0f}% of one core."
    )


def markdown(docs: dict[str, dict[str, Any]], images: dict[str, str], readme: str = "README.md") -> str:
    """The text of RESULTS.md; ``readme``: the link to the method."""
    any_doc = next(iter(docs.values()))
    m = any_doc["machine"]
    v = m["versions"]
    lines = [
        "# stream-ner load test results",
        "",
        "Generated by `python -m loadtest.report` from `loadtest/results/*.json`; the whole set is",
        "re-measured and this file rewritten by `python -m loadtest.scenarios all` (about 20 minutes).",
        f"Method and options: [README.md]({readme}).",
        "",
        *(
            ["**Quick run** (`--quick`): seconds-long steps; the figures are indicative only.", ""]
            if any(doc["quick"] for doc in docs.values())
            else []
        ),
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['logical_cpus']} logical CPUs; memory {m['memory_gb']} GB; {m['os']}",
        f"- Python {m['python']}, onnxruntime {v.get('onnxruntime')}, "
        f"confluent-kafka {v.get('confluent-kafka')} "
        f"(librdkafka {v.get('librdkafka')}), tokenizers {v.get('tokenizers')}",
        "- Everything on the same host: a single-node Kafka broker (KRaft, started by "
        "`stream_ner.localstack`), "
        "the workers, the load generator and the measuring consumer; 6 input and 6 output partitions.",
        f"- Texts: {any_doc['corpus']}, reshuffled and varied (casing, hashtags, handles, emoji).",
        "",
        "**Noise.** " + _noise(docs) + " Figures are medians where repeated; on a shared machine expect "
        "±20% between runs.",
        "",
    ]
    started = sorted(doc["started_at"] for doc in docs.values())
    lines += [f"Scenarios started between {started[0]} and {started[-1]} (UTC).", ""]
    held = [name for name, doc in docs.items() if doc.get("collector") != "poll"]
    if held:
        lines += [
            f"**Caveat.** In {', '.join(held)}, events were read with a batch consume that held each event "
            "until its 50 ms timeout: those latencies are about 25 ms (at most 50 ms) too high. Throughput, "
            "lag, CPU and RSS figures are unaffected. Rerun the scenario to refresh them.",
            "",
        ]
    if "maxrate" in docs:
        lines += _maxrate_section(docs["maxrate"], images)
    if "workers" in docs:
        lines += _workers_section(docs["workers"], images)
    if "batching" in docs:
        lines += _batching_section(docs["batching"])
    if "precision" in docs:
        lines += _precision_section(docs["precision"])
    if "soak" in docs:
        lines += _soak_section(docs["soak"], images)
    lines += [
        "## Commands",
        "",
        "```",
        *(f"{doc['command']}    # {doc['wall_s']:.0f} s" for doc in docs.values()),
        "python -m loadtest.report",
        "```",
        "",
    ]
    if not any_doc["corpus"].startswith("shipped"):
        lines += [
            f"Each with `--corpus DIR` (or `STREAM_NER_LOADTEST_CORPUS=DIR`) naming the texts used here: "
            f"{any_doc['corpus']}; without it the shipped sample posts are sent.",
            "",
        ]
    return "\n".join(lines)


def _workers_cpu(medians: dict[str, Any], count: int) -> str:
    """The workers' median CPU, summed over ``count`` workers, with the share of each when several."""
    shares = [medians.get(f"cpu_w{i + 1}") for i in range(count)]
    if any(share is None for share in shares):
        return "–"
    total = _num(sum(shares))
    return total if count == 1 else f"{total} ({' + '.join(_num(x) for x in shares)})"


def _maxrate_section(doc: dict[str, Any], images: dict[str, str]) -> list[str]:
    f = doc["figures"]
    cfg = doc["config"]
    bare_cfg = doc.get("bare_config", cfg)
    count = cfg.get("workers", 1)
    ratio = f["stream_to_bare"]
    l50, l90 = f["latency_at_50pct"], f["latency_at_90pct"]
    top = step(doc, "load-90pct") or {}
    med = top.get("medians", {})
    bare_eff = statistics.median(
        [b["posts_per_cpu_s"] for b in _bare_runs(f) if b.get("posts_per_cpu_s")] or [0]
    )
    bare_list = ", ".join(format(b["posts_per_s"], ".0f") for b in _bare_runs(f))
    lines = [
        "## Maximum sustained throughput and latency",
        "",
        f"Pipeline: {count} worker process{'es' if count > 1 else ''} in one consumer group, "
        f"{cfg['intra_op_threads']} intra-op thread{'s' if cfg['intra_op_threads'] > 1 else ''} each "
        f"(the fastest layout in *1 vs 2 workers*), batch ≤ {cfg['max_batch_posts']} posts, max wait "
        f"{cfg['max_wait_ms']} ms, {cfg['precision']} graph, brand linking on. Bare runtime: one process "
        f"running `NerModel.predict` with {bare_cfg['intra_op_threads']} intra-op threads on batches of "
        f"{bare_cfg['max_batch_posts']} of the same texts, same precision, measured in the same run around "
        "the stream steps (median).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| bare runtime (median of {bare_list}) | **{f['bare_posts_per_s']:.0f} posts/s** |",
        f"| stream, max sustained rate | **{f['max_sustained_posts_per_s']:.0f} posts/s** |",
        f"| stream / bare | **{ratio:.0%}** (aim ≥ 90%: {'met' if ratio >= 0.9 else 'not met'}) |",
        *(
            [
                f"| mean batch of the workers at the max rate | {f['pipeline_mean_batch_at_max']:.1f} |",
                f"| bare runtime at that batch size ({f['bare_at_pipeline_batch']['batch_posts']} posts) "
                f"| {f['bare_at_pipeline_batch']['posts_per_s']:.0f} posts/s |",
                "| stream / bare at the pipeline's batch size "
                f"| {f['stream_to_bare_at_pipeline_batch']:.0%} |",
            ]
            if "bare_at_pipeline_batch" in f
            else []
        ),
        f"| lowest failed rate in the search | {_num(f['highest_failed_rate'])} posts/s |",
        f"| p99 limit of a sustained step | {f['p99_limit_ms']:.0f} ms |",
        "",
        "End-to-end latency (send by the generator → event read by a consumer of `entities`), ms:",
        "",
        "| load | offered posts/s | p50 | p95 | p99 | p99.9 | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, summary in (("50% of max", l50), ("90% of max", l90)):
        item = step(doc, f"load-{label[:2]}pct") or {}
        lines.append(f"| {label} | {item.get('target_rate', 0):.0f} | {_ms(summary)} |")
    bursts = step(doc, "bursts")
    if bursts:
        lines.append(
            f"| bursts 50% → 150%, 2 s every 10 s | {bursts['target_rate']:.0f} (mean) "
            f"| {_ms(bursts['latency'])} |"
        )
    aim = "met" if l50["p99_ms"] < 250 else "not met"
    lines += ["", f"Aim p99 < 250 ms at 50% load: **{aim}** ({l50['p99_ms']:.0f} ms).", ""]
    if l90["p99_ms"] > f["p99_limit_ms"]:
        lines += [
            f"At 90% of max the step did not hold (p99 {l90['p99_ms']:.0f} ms): a backlog formed and the "
            "worker did not work it off within the step. With a backlog the worker delivers less than the "
            "rate it sustains without one (see *1 vs 2 workers*), so a short stall can tip a step near "
            "capacity into a lasting backlog.",
            "",
        ]
    split = (step(doc, "load-50pct") or {}).get("latency_split") or {}
    if split:
        lines += [
            "Where the time goes at 50% load (the event's `processed_at` splits each latency): median "
            f"{split['to_event_p50_ms']:.0f} ms (p99 {split['to_event_p99_ms']:.0f}) from send until the "
            "worker built the event — input topic, batch wait, inference, brand linking — and "
            f"{split['after_event_p50_ms']:.0f} ms (p99 {split['after_event_p99_ms']:.0f}) from there to "
            "arrival — produce, acknowledgement, output topic, consume.",
            "",
        ]
    lines += [
        "Where the CPU goes at 90% of max (median % of one core while sending): "
        f"{'workers' if count > 1 else 'worker'} {_workers_cpu(med, count)}%, "
        f"broker {_num(med.get('cpu_broker'))}%, "
        f"load generator + measuring consumer {_num(med.get('cpu_loadtest'))}%, "
        f"other work on the machine {_num(med.get('cpu_others'))}% "
        f"(of {100 * doc['machine']['logical_cpus']}%). "
        f"Work per CPU second: the workers turn {_num(top.get('posts_per_worker_cpu_s'))} posts into events "
        f"per CPU second; the bare runtime predicts {_num(bare_eff)} posts per CPU second.",
        "",
        "Search steps (each a constant rate; sustained = lag bounded and p99 under the limit):",
        "",
        "| offered posts/s | events/s | p99 ms | backlog growth posts/s | peak consumer lag | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    search_steps = [item for item in doc["steps"] if item["label"].startswith("search-")]
    for v, item in zip(f["search"], search_steps, strict=False):
        lags = [row["lag"] for row in item["samples"] if row.get("lag") is not None]
        lines.append(
            f"| {v['rate']:.0f} | {v['received_rate_steady']:.0f} | {v['p99_ms']:.0f} "
            f"| {v['backlog_slope']:.1f} | {max(lags) if lags else '–'} | {v['reason']} |"
        )
    lines += [
        "",
        "Consumer lag is the input topic's high watermarks minus the workers' committed offsets; offsets are "
        "committed every 5 s, so a healthy step shows up to about 5 s of posts.",
    ]
    lines.append("")
    for key, caption in (
        ("search", "Search steps"),
        ("latency_over_time", "Latency and throughput over time"),
        ("latency_cdf", "Latency distribution"),
    ):
        if key in images:
            lines += [f"![{caption}]({images[key]})", ""]
    return lines


def _workers_section(doc: dict[str, Any], images: dict[str, str]) -> list[str]:
    f = doc["figures"]
    lines = [
        "## 1 vs 2 workers",
        "",
        "For each layout: the max sustained rate (the same search as above, fewer steps), then a "
        f"saturated step offering {f['offered_posts_per_s']:.0f} posts/s (a backlog being caught up; "
        "events/s over its steady part). "
        "The machine has 2 cores: 1 worker × 2 threads splits every operator of one onnxruntime session "
        "across both, so each operator waits for the slower core (and the broker and the generator take "
        "turns on both); 2 workers × 1 thread run two single-threaded sessions side by side (two "
        "processes, each with its own model copy and RSS), in one consumer group.",
        "",
        "| layout | max sustained posts/s | saturated events/s | events per worker CPU second (saturated) "
        "| mean batch (saturated) | worker CPU % (median) | worker RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in f["runs"]:
        cpu = ", ".join(_num(c) for c in r["worker_cpu_pct"])
        rss = ", ".join(_num(c) for c in r["worker_rss_mb"])
        rate = f"{r['throughput_posts_per_s']:.0f}"
        if not r.get("saturated", True):
            rate = f"≥ {rate} (kept up with the offered rate)"
        lines.append(
            f"| {r['workers']} × {r['threads_per_worker']} thread(s) "
            f"| {_num(r.get('max_sustained_posts_per_s'))} | {rate} "
            f"| {_num(r.get('posts_per_worker_cpu_s'))} "
            f"| {_num(r.get('mean_batch_posts_saturated'), '.1f')} | {cpu} | {rss} |"
        )
    collapse = [r for r in f["runs"] if r.get("max_sustained_posts_per_s") and r.get("saturated", True)]
    if collapse:
        r = collapse[0]
        best_steps = [
            item
            for item in doc["steps"]
            if item.get("verdict", {}).get("rate") == r["max_sustained_posts_per_s"]
            and item.get("workers") == r["workers"]
            and item.get("threads") == r["threads_per_worker"]
        ]
        at_best = best_steps[0] if best_steps else {}
        lines += [
            "",
            f"With a backlog ({r['workers']} × {r['threads_per_worker']}), the worker delivers "
            f"{r['throughput_posts_per_s'] / r['max_sustained_posts_per_s']:.0%} of the rate it sustains "
            f"without one: mean batch {_num(r.get('mean_batch_posts_saturated'), '.1f')} posts and "
            f"{_num(r.get('posts_per_worker_cpu_s'))} events per worker CPU second, against "
            f"{_num(at_best.get('mean_batch_posts'), '.1f')} posts and "
            f"{_num(at_best.get('posts_per_worker_cpu_s'))} events per CPU second at its max sustained rate.",
        ]
    lines += [
        "",
        f"Bare runtime in the same run: {f['bare']['2t']['posts_per_s']:.0f} posts/s with 2 threads, "
        f"{f['bare']['1t']['posts_per_s']:.0f} with 1.",
        "",
    ]
    if "workers" in images:
        lines += [f"![Throughput against workers]({images['workers']})", ""]
    return lines


def _batching_section(doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    lines = [
        "## Batch size and max wait",
        "",
        "One worker per setting: saturated events/s, and latency at a fixed "
        f"{f['fixed_rate_posts_per_s']:.0f} "
        f"posts/s (40% of the bare runtime, {f['bare_reference_posts_per_s']:.0f} posts/s).",
        "",
        "| max batch posts | max wait ms | saturated events/s | p50 | p95 | p99 | p99.9 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in f["runs"]:
        lines.append(
            f"| {r['max_batch_posts']} | {r['max_wait_ms']} | {r['throughput_posts_per_s']:.0f} "
            f"| {_ms(r['latency_at_fixed_rate'])} |"
        )
    return lines + [""]


def _precision_section(doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    lines = [
        "## fp32 vs INT8",
        "",
    ]
    if f["not_shipped"]:
        lines += [f"Not measured: the model has no {', '.join(f['not_shipped'])} graph.", ""]
    if f["runs"]:
        lines += [
            f"Latency at a fixed {_num(f['fixed_rate_posts_per_s'])} posts/s (ms).",
            "",
            "| graph | bare posts/s | stream saturated events/s | worker RSS MB "
            "| p50 | p95 | p99 | p99.9 | max |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in f["runs"]:
            lines.append(
                f"| {r['precision']} | {r['bare_posts_per_s']:.0f} | {r['throughput_posts_per_s']:.0f} "
                f"| {_num(r['worker_rss_mb'])} | {_ms(r['latency_at_fixed_rate'])} |"
            )
    return lines + [""]


def _soak_section(doc: dict[str, Any], images: dict[str, str]) -> list[str]:
    f = doc["figures"]
    lines = [
        "## Soak",
        "",
        f"One worker at {f['rate_posts_per_s']:.0f} posts/s ({f['rate_basis']}) "
        f"for {_duration(f['duration_s'])}: {f['sent']} posts sent, {f['received']} events.",
        "",
        "| worker RSS after | MB |",
        "| --- | --- |",
        f"| {f['early_at_s']:.0f} s | {_num(f['rss_mb_early'], '.1f')} |",
        f"| {f['duration_s']:.0f} s (end) | {_num(f['rss_mb_end'], '.1f')} |",
        f"| growth, {f['early_at_s']:.0f} s to end | {_num(f['rss_growth_mb'], '+.1f')} |",
        f"| growth over the second half | {_num(_second_half_growth(doc), '+.1f')} |",
        "",
        f"Latency over the soak, ms: p50 {f['latency']['p50_ms']:.0f}, p95 {f['latency']['p95_ms']:.0f}, "
        f"p99 {f['latency']['p99_ms']:.0f}, p99.9 {f['latency']['p999_ms']:.0f}, "
        f"max {f['latency']['max_ms']:.0f}.",
        "",
    ]
    if "soak" in images:
        lines += [f"![Soak]({images['soak']})", ""]
    return lines


def _bare_runs(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The bare runtime measurements of a maxrate result (older files: before and after only)."""
    if "bare_runs" in figures:
        return list(figures["bare_runs"])
    return [figures["bare_before"], figures["bare_after"]]


def _second_half_growth(doc: dict[str, Any]) -> float | None:
    """Worker RSS at the end minus at half time (medians of the samples within 5 s), MB."""
    rss = [(r["t"], r["rss_mb_w1"]) for r in doc["steps"][0]["samples"] if r.get("rss_mb_w1") is not None]
    duration = doc["figures"]["duration_s"]
    half = [v for t, v in rss if abs(t - duration / 2) <= 5]
    end = [v for t, v in rss if abs(t - duration) <= 5]
    return round(statistics.median(end) - statistics.median(half), 1) if half and end else None


def main(argv: list[str] | None = None) -> int:
    """Draw the plots and write the markdown report."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS), help="directory of scenario JSON files")
    parser.add_argument(
        "--out", default=None, help="markdown file (default: loadtest/RESULTS.md or DIR/RESULTS.md)"
    )
    args = parser.parse_args(argv)
    results = Path(args.results).resolve()
    out = (
        Path(args.out)
        if args.out
        else (HERE / "RESULTS.md" if results == RESULTS else results / "RESULTS.md")
    )
    docs = load(results)
    if not docs:
        raise SystemExit(f"no scenario results in {args.results}")
    images: dict[str, str] = {}
    plots = [
        ("search", "maxrate", plot_search),
        ("latency_over_time", "maxrate", plot_latency_over_time),
        ("workers", "workers", plot_workers),
        ("soak", "soak", plot_soak),
    ]
    for key, scenario, draw in plots:
        path = results / f"{key}.png"
        if scenario in docs and draw(docs[scenario], path):
            images[key] = _relative(path, out.parent)
    if plot_latency_cdf(docs, results / "latency_cdf.png"):
        images["latency_cdf"] = _relative(results / "latency_cdf.png", out.parent)
    out.write_text(markdown(docs, images, _relative(HERE / "README.md", out.parent)))
    print(f"wrote {out.name} and {len(images)} plots")
    return 0


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


if __name__ == "__main__":
    raise SystemExit(main())
