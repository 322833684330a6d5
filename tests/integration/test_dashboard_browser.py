"""The dashboard in a real browser: posts through a worker, the aggregator and the dashboard, into Chromium.

Debian's ``chromium`` and ``chromium-driver``, driven by Selenium (``deploy/local/install-deps.sh
--browser`` installs them; the test fails, never skips, without them). The stream: the sample posts plus
one post naming each catalog brand (126 brands), at 20 posts/s through a real worker and aggregator. The
page must list the expected top brands and exactly what Redis holds, show a post produced after it loaded
in its live feed within seconds, with its markup as text, log no console error, and refuse every route
without the token. Measured and reported (not asserted against the aims): first paint, time to the first
leaderboard, and how long after an event reached ``entities`` the feed and the leaderboard showed it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import redis

from loadtest.aggregate_check import WINDOWS, Names, create_topics, start_aggregator
from stream_ner.aggregate.leaderboard import read_top
from stream_ner.brands import BrandLinker
from stream_ner.brands.catalog import load_catalog
from stream_ner.localstack import free_port
from tests.integration.worker_harness import Topics, start_worker

TOKEN = "dashboard-test-token"
RATE = 20.0  # posts/s
XSS = "<img src=x onerror=alert(1)>"
TEMPLATES = [  # one post per catalog brand; each names that brand only
    "Thinking about {} today, honestly.",
    "Anyone else loving {} lately?",
    "Customer service at {} sorted my problem in five minutes",
    "Not impressed with {} this week",
    "Reading the news about {} over coffee",
]


def sample_posts() -> list[dict]:
    lines = (resources.files("stream_ner") / "samples" / "posts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def linked(linker: BrandLinker, texts: list[str]) -> list[list[str]]:
    return [list(links.brands) for links in linker.link(texts, [[] for _ in texts])]


class Stream:
    """Produces posts to raw-posts at a steady rate in a thread, cycling through ``bodies``."""

    def __init__(self, bootstrap: str, topic: str, bodies: list[dict], rate: float) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.bodies, self.rate = topic, bodies, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        authors = [f"user{i}" for i in range(40)]
        started = time.monotonic()
        while not self._stop.is_set():
            body = self.bodies[self.sent % len(self.bodies)]
            post = body | {
                "id": f"{body['id']}-{self.sent}",
                "created_at": datetime.now(UTC).isoformat(),
                "author": random.choice(authors),
            }
            self.send(post)
            self.sent += 1
            self._stop.wait(max(0.0, started + self.sent / self.rate - time.monotonic()))

    def send(self, post: dict) -> None:
        self.producer.produce(self.topic, key=post["id"].encode(), value=json.dumps(post).encode())
        self.producer.poll(0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.producer.flush(10)


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body; only the status of an event stream (its body never ends)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            streaming = response.headers.get_content_type() == "text/event-stream"
            return response.status, b"" if streaming else response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:  # not listening yet
        return 0, b""


def wait_for(what: str, check, timeout: float, every: float = 0.2):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[object]:
    """Headless Debian Chromium through its chromedriver; console messages are kept."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver: "
            "deploy/local/install-deps.sh --browser",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1480,1000", "--no-first-run", "--disable-extensions", "--mute-audio",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def severe(browser) -> list[str]:  # noqa: ANN001
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def start_dashboard(bootstrap: str, redis_url: str, names: Names, alerts: str, port: int, log: Path):
    env = os.environ | {
        "STREAM_NER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "STREAM_NER_TOPICS__ENTITIES": names.entities,
        "STREAM_NER_TOPICS__BRAND_ALERTS": alerts,
        "STREAM_NER_REDIS__URL": redis_url,
        "STREAM_NER_REDIS__KEY_PREFIX": names.prefix,
        "STREAM_NER_AGGREGATE__WINDOWS": json.dumps(WINDOWS),
        "STREAM_NER_DASHBOARD__TOKEN": TOKEN,
        "STREAM_NER_DASHBOARD__LEADERBOARD_ROWS": "200",
        "STREAM_NER_DASHBOARD__LOOKBACK_S": "600",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream_ner", "dashboard", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def test_dashboard_in_chromium_shows_the_stream_live_and_safely(
    chrome, kafka_bootstrap, redis_url, tmp_path, request, report
):
    browser = chrome
    names = Names.fresh(request.node.name)
    topics = Topics(
        f"{names.app_id}.raw", names.entities, f"{names.app_id}.dlq", names.aggregates, f"{names.app_id}.w"
    )
    alerts_topic = f"{names.app_id}.alerts"
    create_topics(
        kafka_bootstrap,
        [topics.raw, topics.entities, topics.dlq, names.aggregates, alerts_topic],
        partitions=2,
    )

    # The stream: the sample posts and one post per catalog brand but one (the marker, kept for later).
    linker = BrandLinker.from_catalog()
    samples = sample_posts()
    in_samples = {b for brands in linked(linker, [p["text"] for p in samples]) for b in brands}
    catalog = sorted(load_catalog().brands.values(), key=lambda b: b.id)
    per_brand = [
        {"id": f"brand-{b.id}", "text": TEMPLATES[i % len(TEMPLATES)].format(b.name)}
        for i, b in enumerate(catalog)
    ]
    found = linked(linker, [p["text"] for p in per_brand])
    marker = next(
        b.id
        for b, brands in zip(catalog, found, strict=True)
        if brands == [b.id] and b.id not in in_samples and not b.ambiguous
    )
    marker_name = load_catalog().brands[marker].name
    bodies = samples + [p for p, brands in zip(per_brand, found, strict=True) if marker not in brands]
    assert len(in_samples | {b for brands in found for b in brands}) == len(catalog) == 126

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_worker(kafka_bootstrap, topics, tmp_path, "w0")
    aggregator = start_aggregator(kafka_bootstrap, redis_url, names, tmp_path / "agg.log", partitions="2")
    dashboard = start_dashboard(
        kafka_bootstrap, redis_url, names, alerts_topic, port, tmp_path / "dashboard.log"
    )
    stream = Stream(kafka_bootstrap, topics.raw, bodies, RATE)
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    def alive() -> None:
        aggregator.alive()
        assert worker.proc.poll() is None, worker.log()
        log = (tmp_path / "dashboard.log").read_text(errors="replace")[-4000:]
        assert dashboard.poll() is None, f"dashboard exited with {dashboard.returncode}:\n{log}"

    def board(window: str) -> dict:
        alive()
        status, body = http(f"{base}/api/board?window={window}", bearer)
        return json.loads(body) if status == 200 and body != b"null" else {}

    try:
        worker.wait_assigned()
        wait_for("the dashboard", lambda: alive() or http(f"{base}/health", bearer)[0] == 200, 60)
        stream.start()
        wait_for("100 brands on the 5m board", lambda: len(board("5m").get("rows", [])) >= 100, 120, 0.5)

        # Without the token every route answers 401, in the browser too.
        for path in ("/", "/api/events?window=1m", "/api/board?window=1m", "/static/app.js", "/health"):
            assert http(base + path)[0] == 401, path
            assert http(base + path, {"Authorization": "Bearer wrong"})[0] == 401, path
            assert http(base + path, bearer)[0] == 200, path
        browser.get(base + "/")
        assert "401 Unauthorized" in browser.find_element("tag name", "body").text
        browser.get_log("browser")  # the refused page logs its 401s: not the page's errors

        # First paint, then the leaderboard (of the 5m window: the 1m one may just have begun).
        browser.get(f"{base}/?token={TOKEN}#/5m")
        assert "token=" not in browser.current_url  # it became a cookie
        rendered = wait_for(
            "the leaderboard in the page",
            lambda: browser.execute_script(
                "const m = performance.getEntriesByName('board-rendered');"
                "return m.length ? m[0].startTime : null;"
            ),
            15,
            0.05,
        )
        paint = browser.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint');"
            "return p.length ? p[0].startTime : null;"
        )
        rows = browser.execute_script(
            "return [...document.querySelectorAll('#board tbody tr')].map(r => r.dataset.brand);"
        )
        assert len(rows) >= 100
        browser.refresh()  # again, as a returning user (cookie set, files cached, browser warm)
        rendered_again = wait_for(
            "the leaderboard after a reload",
            lambda: browser.execute_script(
                "const m = performance.getEntriesByName('board-rendered');"
                "return m.length ? m[0].startTime : null;"
            ),
            15,
            0.05,
        )
        paint_again = browser.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint');"
            "return p.length ? p[0].startTime : null;"
        )

        # A post produced now appears in the live feed, as text; the marker brand reaches the leaderboard.
        browser.execute_script(
            "window.__seen = {}; const brand = arguments[0];"
            "new MutationObserver(() => {"
            "  const row = document.querySelector(`#board tbody tr[data-brand='${brand}']`);"
            "  if (row && !window.__seen.row) window.__seen.row = Date.now();"
            "}).observe(document.querySelector('#board tbody'), {childList: true});",
            marker,
        )
        xss_id = f"xss-{uuid.uuid4().hex[:8]}"
        xss_text = f"{XSS} just tried {marker_name} and it is great"
        produced = time.monotonic()
        stream.send({"id": xss_id, "text": xss_text, "created_at": datetime.now(UTC).isoformat()})
        stream.producer.flush(5)
        # The feed re-renders as events arrive: read a post's element in one script, never hold it.
        read_post = (
            "const li = document.querySelector(`#feed li[data-post-id='${arguments[0]}']`);"
            "return li && {text: li.querySelector('.text').textContent, received: li.dataset.receivedMs,"
            "  entities: li.dataset.entitiesMs,"
            "  brands: [...li.querySelectorAll('.meta .b')].map(b => b.textContent),"
            "  elements: li.querySelectorAll('.text *:not(mark)').length};"
        )
        post = wait_for(
            "the new post in the live feed", lambda: browser.execute_script(read_post, xss_id), 15, 0.05
        )
        feed_seconds = time.monotonic() - produced
        assert post["text"] == xss_text and post["elements"] == 0  # the markup is text, not elements
        assert marker in post["brands"]
        assert not browser.find_elements("css selector", "img:not(.logo)")
        assert browser.find_elements("css selector", "#feed mark.ent")  # entities are highlighted
        entities_ms = int(post["entities"])
        feed_delay_ms = int(post["received"]) - entities_ms
        board_ms = wait_for(
            f"{marker} on the leaderboard",
            lambda: browser.execute_script("return window.__seen.row || null;"),
            15,
            0.1,
        )
        board_delay_ms = board_ms - entities_ms

        # The feed filtered by the marker brand shows only its posts.
        filtered = browser.execute_script(
            "const select = document.getElementById('feed-brand');"
            "if (![...select.options].some(o => o.value === arguments[0])) return null;"
            "select.value = arguments[0]; select.dispatchEvent(new Event('change'));"
            "return [...document.querySelectorAll('#feed li')].map(li => li.dataset.postId);",
            marker,
        )
        assert filtered == [xss_id]
        browser.execute_script(
            "const select = document.getElementById('feed-brand');"
            "select.value = ''; select.dispatchEvent(new Event('change'));"
        )

        # The shipped model's events carry sentiment: the page shows it, and sorting by it orders the rows
        # by it (rows without one last), every row kept.
        count = "return document.querySelectorAll('#board tbody tr').length;"
        before = browser.execute_script(count)
        header = browser.find_element("css selector", "th[data-sort='sentiment']")
        header.click()
        direction = header.get_attribute("aria-sort")
        assert direction in ("ascending", "descending")
        assert not browser.find_element("id", "sentiment-note").is_displayed()
        cells = browser.execute_script(
            "return [...document.querySelectorAll('#board tbody tr')].map(r => {"
            "  const s = r.querySelector('.sentiment .value');"
            "  if (!s) return null;"
            "  const parts = [...r.querySelectorAll('.polarity > span')];"
            "  return {value: s.textContent,"
            "          split: Object.fromEntries(parts.map(p => [p.className, Number(p.dataset.count)])),"
            "          widths: parts.map(p => p.getBoundingClientRect().width),"
            "          bar: r.querySelector('.polarity')?.getBoundingClientRect().width}; });"
        )
        assert len(cells) == before
        scored = [float(cell["value"]) for cell in cells if cell is not None]
        assert scored, "no row shows a sentiment"
        assert len(set(scored)) > 1, f"every row shows the same sentiment: {scored}"
        assert cells[: len(scored)] == [c for c in cells if c is not None], "rows without one come last"
        assert scored == sorted(scored, reverse=direction == "descending")
        # each scored row splits its mentions by polarity: a bar whose parts are as wide as their counts
        for cell in (c for c in cells if c is not None):
            split, total = cell["split"], sum(cell["split"].values())
            assert total > 0 and set(split) <= {"neg", "neu", "pos"}, cell
            assert sum(cell["widths"]) == pytest.approx(cell["bar"], abs=1.0)
            for width, count in zip(cell["widths"], split.values(), strict=True):
                assert width == pytest.approx(cell["bar"] * count / total, abs=1.0), cell
            # all mentions one way: the mean (positive minus negative probability) has that sign
            if set(split) == {"pos"}:
                assert cell["value"].startswith("+"), cell
            if set(split) == {"neg"}:
                assert cell["value"].startswith("-"), cell
        browser.find_element("css selector", "th[data-sort='mentions']").click()

        screenshots = Path(os.environ.get("STREAM_NER_SCREENSHOT_DIR") or tmp_path)
        screenshots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(screenshots / "dashboard.png"))

        # The brand page of the top brand: series chart, co-mentions, its latest posts.
        top_brand = browser.execute_script(
            "const row = document.querySelector('#board tbody tr'); row.click(); return row.dataset.brand;"
        )
        wait_for("the brand page", lambda: browser.find_element("id", "brand-view").is_displayed(), 5)
        wait_for(
            "the mentions chart", lambda: browser.find_elements("css selector", "#chart-mentions canvas"), 10
        )
        wait_for("the brand's posts", lambda: browser.find_elements("css selector", "#brand-posts li"), 10)
        assert top_brand in browser.current_url
        # its mentions split by polarity: the counts, and a bar whose parts are as wide as they are
        split = browser.execute_script(
            "const s = document.querySelector('#brand-stats .split');"
            "if (!s) return null;"
            "const parts = [...s.querySelectorAll('.polarity > span')];"
            "return {text: s.querySelector('b').textContent,"
            "        counts: Object.fromEntries(parts.map(p => [p.className, Number(p.dataset.count)])),"
            "        widths: parts.map(p => p.getBoundingClientRect().width),"
            "        bar: s.querySelector('.polarity').getBoundingClientRect().width};"
        )
        assert split is not None, "the top brand's page shows no polarity split"
        shown = dict(zip(("neg", "neu", "pos"), map(int, split["text"].split(" / ")), strict=True))
        assert {k: v for k, v in shown.items() if v} == split["counts"]
        total = sum(shown.values())
        assert total > 0
        for width, count in zip(split["widths"], split["counts"].values(), strict=True):
            assert width == pytest.approx(split["bar"] * count / total, abs=1.0), split
        browser.save_screenshot(str(screenshots / "dashboard-brand.png"))
        browser.find_element("id", "back").click()

        def shown_window() -> str:
            return browser.execute_script("return document.getElementById('board').dataset.window;")

        # The window buttons switch the board; back on 5m, after the stream stops, it shows what Redis holds.
        for window in ("1m", "5m"):
            browser.find_element("xpath", f"//nav[@id='windows']/button[text()='{window}']").click()
            wait_for(f"the {window} board", lambda w=window: shown_window() == w, 10)
        stream.stop()
        client = redis.Redis.from_url(redis_url)

        def settled() -> list[tuple[str, int]] | None:
            start = browser.execute_script("return document.getElementById('board').dataset.start;")
            if not start or shown_window() != "5m":
                return None
            top = read_top(client, names.prefix, "5m", at=int(start), n=10)
            page = browser.execute_script(
                "return [...document.querySelectorAll('#board tbody tr')].slice(0, 10)"
                ".map(r => [r.dataset.brand, Number(r.dataset.mentions)]);"
            )
            expected = [[row.brand, row.mentions] for row in top.rows] if top else None
            return page if page == expected else None

        time.sleep(2)  # the last posts of the stream reach the aggregator
        page_top = wait_for("the 5m leaderboard to equal Redis", settled, 30, 0.5)
        client.close()
        assert {"google", "apple"} <= {brand for brand, _ in page_top[:5]}, (
            page_top
        )  # the samples' top brands

        errors = severe(browser)
        assert not errors, errors
        with pytest.raises(Exception, match="no such alert"):
            browser.switch_to.alert.text  # noqa: B018 - the XSS post opened no alert
    finally:
        stream.stop()
        for proc in (dashboard,):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        aggregator.stop()
        if worker.proc.poll() is None:
            worker.terminate()

    def ms(value: float | None) -> str:  # the browser may not record a paint (a page painted before)
        return "n/a" if value is None else f"{value:.0f}"

    report(
        f"dashboard in Chromium, {len(catalog)} brands at {RATE:g} posts/s: first contentful paint "
        f"{ms(paint)} ms, first leaderboard {rendered:.0f} ms after navigation (first visit, with the token "
        f"redirect), {ms(paint_again)} / {rendered_again:.0f} ms on a reload; "
        f"event on entities -> live feed {feed_delay_ms} ms, -> leaderboard row {board_delay_ms} ms "
        f"(post produced -> feed {feed_seconds * 1000:.0f} ms); screenshots in {screenshots}"
    )
