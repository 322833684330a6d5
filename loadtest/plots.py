"""The load-test plots (PNG), each drawn from the scenario results alone; ``loadtest.report`` calls them.

Every ``plot_*`` writes one file and returns whether it had anything to draw.
"""

from __future__ import annotations

import math
from pathlib import Path

from loadtest.measure import cdf, decode
from loadtest.schema import AggregateDoc, MaxrateDoc, ResultFiles, SoakDoc, WorkersDoc, find_step

DPI = 72


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def plot_latency_over_time(maxrate: MaxrateDoc, path: Path) -> bool:
    """Per-second p50/p99 (by send time) and sent/received per second of the load and burst steps."""
    steps = [s for s in (find_step(maxrate, n) for n in ("load-50pct", "load-90pct", "bursts")) if s]
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


def plot_latency_cdf(docs: ResultFiles, path: Path) -> bool:
    """Latency against percentile ("nines" axis) for the load steps, bursts and the soak."""
    curves = []
    maxrate, soak = docs.get("maxrate"), docs.get("soak")
    for doc, label in (
        (maxrate, "load-50pct"),
        (maxrate, "load-90pct"),
        (maxrate, "bursts"),
        (soak, "soak"),
    ):
        item = find_step(doc, label)
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


def plot_workers(workers: WorkersDoc, path: Path) -> bool:
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
    ax.set_title(f"throughput against workers ({workers['machine']['logical_cpus']} cores)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_search(maxrate: MaxrateDoc, path: Path) -> bool:
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


def plot_soak(soak: SoakDoc, path: Path) -> bool:
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


def plot_aggregate(doc: AggregateDoc, path: Path) -> bool:
    """Events/s of each aggregator run, the baseline commit first, log scale."""
    runs = doc["figures"]["runs"]
    if not runs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    labels = [f"{r['label']} ({i})" for i, r in enumerate(runs, start=1)]
    rates = [r["events_per_s"] for r in runs]
    colors = ["tab:grey" if r["code"] == "baseline" else "tab:blue" for r in runs]
    bars = ax.barh(labels, rates, color=colors)
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in rates], padding=3, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1000, color="tab:green", ls=":", label="aim: 1,000 events/s per process")
    ax.invert_yaxis()
    ax.set_xlabel("entity events/s to Redis (log scale)")
    ax.set_title("aggregator alone (grey: an earlier commit)")
    ax.legend(loc="upper right", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True
