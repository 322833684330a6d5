"""The committed benchmark report is a pure function of the committed result files."""

from pathlib import Path

from loadtest import plots, report


def committed() -> dict:
    docs = report.load(report.RESULTS)
    assert set(docs) == set(report.ORDER), (
        "loadtest/results/ lacks a scenario; run: python -m loadtest.scenarios all"
    )
    return docs


def test_results_md_is_regenerated_from_the_result_files():
    docs = committed()
    images = {
        key: f"results/{key}.png"
        for key in ("search", "latency_over_time", "workers", "soak", "aggregate", "latency_cdf")
        if (report.RESULTS / f"{key}.png").is_file()
    }
    expected = report.markdown(docs, images)
    assert (report.HERE / "RESULTS.md").read_text() == expected, "run: python -m loadtest.report"


def test_headline_figures_are_consistent():
    figures = committed()["maxrate"]["figures"]
    assert figures["stream_to_bare"] == round(
        figures["max_sustained_posts_per_s"] / figures["bare_posts_per_s"], 3
    )
    sustained = [v["rate"] for v in figures["search"] if v["sustained"]]
    assert figures["max_sustained_posts_per_s"] == max(sustained)
    for key in ("latency_at_50pct", "latency_at_90pct"):
        summary = figures[key]
        assert summary["count"] > 0
        assert (
            summary["p50_ms"]
            <= summary["p95_ms"]
            <= summary["p99_ms"]
            <= summary["p999_ms"]
            <= summary["max_ms"]
        )


def test_plots_are_drawn_from_the_results(tmp_path: Path):
    docs = committed()
    assert plots.plot_search(docs["maxrate"], tmp_path / "search.png")
    assert plots.plot_latency_over_time(docs["maxrate"], tmp_path / "time.png")
    assert plots.plot_latency_cdf(docs, tmp_path / "cdf.png")
    assert plots.plot_workers(docs["workers"], tmp_path / "workers.png")
    assert plots.plot_soak(docs["soak"], tmp_path / "soak.png")
    assert plots.plot_aggregate(docs["aggregate"], tmp_path / "aggregate.png")
    for png in tmp_path.iterdir():
        assert png.read_bytes().startswith(b"\x89PNG")


def test_aggregator_figures_are_consistent():
    figures = committed()["aggregate"]["figures"]
    runs = figures["runs"]
    assert all(run["exact"] for run in runs), "every drain ended exact"
    one = sorted(run["events_per_s"] for run in runs if run["label"] == "1 process")
    assert figures["one_process_events_per_s"] == one[len(one) // 2]
    base = [run for run in runs if run["code"] == "baseline"]
    if base:
        assert figures["speedup_vs_baseline"] == round(
            figures["one_process_events_per_s"] / base[0]["events_per_s"], 1
        )


def test_peer_ratios_are_stream_ners_rate_over_theirs_from_the_same_run():
    docs = committed()
    peers = docs["peers"]["figures"]
    maxrate = docs["maxrate"]
    assert peers["stream_measured_at"] == maxrate["started_at"]
    assert peers["stream_max_sustained_posts_per_s"] == maxrate["figures"]["max_sustained_posts_per_s"]
    assert [run["peer"] for run in peers["runs"]] == ["naive", "spacy"]
    for run in peers["runs"]:
        sustained = [v["rate"] for v in run["search"] if v["sustained"]]
        assert run["max_sustained_posts_per_s"] == max(sustained)
        assert run["stream_to_peer"] == round(
            peers["stream_max_sustained_posts_per_s"] / run["max_sustained_posts_per_s"], 2
        )


def test_the_search_with_repeated_texts_is_reported_when_the_result_has_it():
    docs = committed()
    docs["maxrate"]["figures"].pop("with_duplicates", None)
    assert "repeating an earlier text" not in report.markdown(docs, {})
    verdict = docs["maxrate"]["figures"]["search"][0]
    docs["maxrate"]["figures"]["with_duplicates"] = {
        "duplicate_share": 0.3,
        "max_sustained_posts_per_s": 190.0,
        "to_without_duplicates": 1.31,
        "dedupe_hit_share_at_max": 0.318,
        "dedupe_hit_share_without": 0.041,
        "search": [verdict],
    }
    text = report.markdown(docs, {})
    assert (
        "| with 30% of the posts repeating an earlier text, max sustained | **190 posts/s** (131% of" in text
    )
    assert (
        "| posts served from the duplicate cache at that rate (at the max without repeats) | 32% (4%) |"
        in text
    )


def test_a_second_trial_of_a_failed_rate_is_marked():
    def step(rate: float, sustained: bool) -> dict:
        return {"rate": rate, "sustained": sustained}

    search = [step(700, False), step(700, True), step(800, False), step(800, False), step(750, True)]
    assert report._trial_notes(search) == ["", " (second trial)", "", " (second trial)", ""]
    # the same rate after a sustained step is a new search step, not a second trial
    assert report._trial_notes([step(500, True), step(500, True)]) == ["", ""]
    assert report._trial_notes([]) == []
