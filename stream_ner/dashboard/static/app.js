// stream-ner brand dashboard. No build step, no framework: one EventSource per page, DOM built with
// createElement/textContent only (post text is never parsed as HTML), charts by the vendored uPlot.
(function () {
  "use strict";

  const config = JSON.parse(document.body.dataset.config);
  const windows = config.windows.map((w) => w.name);
  const FEED_KEPT = 300;
  const FEED_SHOWN = 80;

  const state = {
    window: windows[0],
    board: null,
    sort: { key: "mentions", dir: -1 },
    feed: [], // oldest first
    feedBrand: "",
    alerts: [],
    brand: null, // the open brand page
    page: null,
    source: null,
    arrivals: [], // ms of recent feed items, for events/s
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function family(name) {
    return config.windows.find((w) => w.name === name);
  }

  function clock(epochS, withSeconds) {
    const d = new Date(epochS * 1000);
    const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withSeconds) opts.second = "2-digit";
    return d.toLocaleTimeString([], opts);
  }

  function pct(x, digits) {
    return (x * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  // ---- routing: #/<window> or #/<window>/brand/<id>

  function readHash() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    const window = windows.includes(parts[0]) ? parts[0] : windows[0];
    const brand = parts[1] === "brand" && parts[2] ? parts[2] : null;
    return { window, brand };
  }

  function go(window, brand) {
    const hash = "#/" + encodeURIComponent(window) + (brand ? "/brand/" + encodeURIComponent(brand) : "");
    if (location.hash !== hash) location.hash = hash;
    else route();
  }

  function route() {
    const { window, brand } = readHash();
    const windowChanged = window !== state.window || !state.source;
    state.window = window;
    state.brand = brand;
    renderWindows();
    if (windowChanged) connect();
    $("board-view").hidden = !!brand;
    $("brand-view").hidden = !brand;
    if (brand) {
      state.page = null;
      renderBrand();
      loadBrand(true);
    }
  }

  // ---- live updates

  function connect() {
    if (state.source) state.source.close();
    state.board = null;
    renderBoard();
    const source = new EventSource("/api/events?window=" + encodeURIComponent(state.window));
    state.source = source;
    source.addEventListener("open", () => setStatus("live"));
    source.addEventListener("error", () => setStatus(source.readyState === 2 ? "down" : "reconnecting"));
    source.addEventListener("board", (e) => {
      state.board = JSON.parse(e.data);
      renderBoard();
      renderSpikes();
      if (state.brand) loadBrand(false);
      setStatus("live");
    });
    source.addEventListener("feed", (e) => addFeed(JSON.parse(e.data)));
    source.addEventListener("alerts", (e) => {
      state.alerts = JSON.parse(e.data);
      renderSpikes();
    });
  }

  function setStatus(kind) {
    const box = $("status");
    box.className = "status " + (kind === "live" ? "live" : kind === "down" ? "down" : "");
    const now = Date.now();
    state.arrivals = state.arrivals.filter((t) => now - t < 10000);
    const rate = state.arrivals.length / 10;
    const updated = state.board ? " · board read " + clock(state.board.read_at_ms / 1000, true) : "";
    $("status-text").textContent =
      kind === "live" ? "live · " + rate.toFixed(1) + " events/s" + updated : kind + "…";
  }

  // ---- leaderboard

  function sortedRows() {
    const rows = state.board ? state.board.rows.slice() : [];
    const { key, dir } = state.sort;
    const value = (r) => (key === "sentiment" ? (r.sentiment === null ? null : r.sentiment) : r.mentions);
    rows.sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      if (va === vb) return b.mentions - a.mentions || (a.brand < b.brand ? -1 : 1);
      if (va === null) return 1; // rows without sentiment last, whatever the direction
      if (vb === null) return -1;
      return dir * (va - vb);
    });
    return rows;
  }

  function changeCell(row) {
    if (row.previous === null) return el("td", { class: "num new", text: "–", title: "no previous window" });
    if (row.change === null) return el("td", { class: "num new", text: "new" });
    const cls = row.change > 0.005 ? "up" : row.change < -0.005 ? "down" : "flat";
    const sign = row.change > 0 ? "+" : "";
    return el("td", { class: "num " + cls, text: sign + pct(row.change, 0), title: row.previous + " before" });
  }

  function sentimentCell(row) {
    if (row.sentiment === null) {
      return el("td", null, el("span", { class: "nosentiment", text: "no sentiment yet" }));
    }
    const marker = el("span", { class: "marker" });
    marker.style.left = ((row.sentiment + 1) / 2) * 100 + "%";
    const label = row.sentiment > 0.05 ? "positive" : row.sentiment < -0.05 ? "negative" : "neutral";
    return el(
      "td",
      null,
      el(
        "div",
        { class: "sentiment", title: label + ", " + row.sentiment_posts + " posts with a sentiment" },
        el("span", { class: "gauge" }, el("span", { class: "scale" }, marker), polarityBar(row)),
        el("span", { class: "value", text: (row.sentiment > 0 ? "+" : "") + row.sentiment.toFixed(2) })
      )
    );
  }

  // The mentions toward the brand split by polarity: a mean near 0 can be a neutral brand or a split one.
  function polarityBar(row) {
    const [negative, neutral, positive] = row.polarity;
    const total = negative + neutral + positive;
    if (!total) return null;
    const bar = el("span", {
      class: "polarity",
      title: negative + " negative, " + neutral + " neutral, " + positive + " positive mentions",
    });
    for (const [cls, count] of [["neg", negative], ["neu", neutral], ["pos", positive]]) {
      if (!count) continue;
      const part = el("span", { class: cls, dataset: { count: count } });
      part.style.width = (count / total) * 100 + "%";
      bar.append(part);
    }
    return bar;
  }

  // The brand page's split: the counts and the bar its leaderboard row shows.
  function polarityStat(row) {
    const bar = polarityBar(row);
    if (!bar) return null;
    const [negative, neutral, positive] = row.polarity;
    return el(
      "div",
      { class: "stat split" },
      el("b", { text: negative + " / " + neutral + " / " + positive }),
      bar,
      el("span", { text: "negative / neutral / positive" })
    );
  }

  function renderBoard() {
    const board = state.board;
    const body = $("board").tBodies[0];
    const rows = sortedRows();
    const top = rows.reduce((m, r) => Math.max(m, r.mentions), 1);
    const fragment = document.createDocumentFragment();
    rows.forEach((row, i) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.max(2, (row.mentions / top) * 70) + "px";
      const name = el("span", {
        class: row.unknown ? "unknown" : "",
        text: row.name,
        title: row.unknown ? "not in the brand catalog" : row.brand,
      });
      const tr = el(
        "tr",
        {
          class: row.spike ? "spiking" : "",
          dataset: { brand: row.brand, mentions: String(row.mentions) },
          onclick: () => go(state.window, row.brand),
        },
        el("td", { class: "num rank", text: String(i + 1) }),
        el(
          "td",
          null,
          el(
            "div",
            { class: "brandcell" },
            name,
            row.spike
              ? el("span", {
                  class: "badge",
                  text: "SPIKE",
                  title: "z " + row.spike.score + " over a mean of " + row.spike.mean,
                })
              : null
          )
        ),
        el("td", { class: "num" }, el("div", { class: "mentions" }, bar, String(row.mentions))),
        el("td", { class: "num", text: pct(row.share) }),
        changeCell(row),
        el("td", { class: "num", text: String(row.authors) }),
        sentimentCell(row)
      );
      fragment.append(tr);
    });
    body.replaceChildren(fragment);
    $("board-empty").hidden = rows.length > 0;
    $("sentiment-note").hidden = !board || board.sentiment_posts > 0 || rows.length === 0;
    for (const th of document.querySelectorAll("th.sortable")) {
      const on = th.dataset.sort === state.sort.key;
      if (on) th.setAttribute("aria-sort", state.sort.dir < 0 ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
    const f = family(state.window);
    if (board) {
      const secs = f.size_s < 3600;
      $("window-range").textContent =
        state.window + " window " + clock(board.start, secs) + "–" + clock(board.end, secs);
      $("totals").replaceChildren(
        el("span", null, el("b", { text: String(board.total_mentions) }), " mentions"),
        el("span", null, el("b", { text: String(board.brands) }), " brands")
      );
      Object.assign($("board").dataset, { renderedMs: String(Date.now()), window: board.window, start: String(board.start) });
      if (!performance.getEntriesByName("board-rendered").length && rows.length) {
        performance.mark("board-rendered");
      }
    } else {
      $("window-range").textContent = "";
      $("totals").replaceChildren();
    }
    renderFeedBrands();
  }

  function sortBy(key) {
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : -1 };
    renderBoard();
  }

  // ---- spikes

  function renderSpikes() {
    $("spike-rule").textContent =
      "> " + config.spike.z + " SD over the trailing mean, at least " + config.spike.min_mentions + " mentions";
    const list = $("spikes");
    const items = [];
    const rows = state.board ? state.board.rows.filter((r) => r.spike) : [];
    for (const row of rows) {
      items.push(
        el(
          "li",
          { onclick: () => go(state.window, row.brand), dataset: { brand: row.brand } },
          el("span", { class: "badge", text: "▲ " + row.spike.score }),
          el("b", { text: row.name }),
          el("span", null, row.mentions + " mentions"),
          el("span", { class: "muted", text: "mean " + row.spike.mean.toFixed(1) + " ± " + row.spike.stdev.toFixed(1) })
        )
      );
    }
    const current = state.board ? state.board.start : null;
    for (const alert of state.alerts.slice().reverse()) {
      const start = Date.parse(alert.window_start) / 1000;
      if (alert.window === state.window && start === current) continue; // listed above
      items.push(
        el(
          "li",
          { onclick: () => go(alert.window, alert.brand) },
          el("span", { class: "muted", text: alert.window + " " + clock(start, alert.window !== "1h") }),
          el("b", { text: alert.brand }),
          el("span", null, alert.mentions + " mentions (z " + alert.score + ")")
        )
      );
      if (items.length >= 12) break;
    }
    list.replaceChildren(...items);
    $("spikes-empty").hidden = items.length > 0;
  }

  // ---- live feed

  function postItem(item, fresh) {
    const text = el("div", { class: "text" });
    for (const [chunk, label, brand] of item.segments) {
      if (label) {
        text.append(el("mark", { class: "ent ent-" + label, title: label + (brand ? " → " + brand : ""), text: chunk }));
      } else {
        text.append(document.createTextNode(chunk));
      }
    }
    const when = item.created_at ? new Date(item.created_at) : new Date(item.entities_ms);
    const meta = el(
      "div",
      { class: "meta" },
      el("span", { text: when.toLocaleTimeString([], { hour12: false }) }),
      item.author ? el("span", { text: "@" + item.author }) : null,
      ...item.brands.slice(0, 6).map((b) => el("span", { class: "b", text: b }))
    );
    return el(
      "li",
      {
        class: fresh ? "fresh" : "",
        dataset: {
          postId: item.post_id,
          entitiesMs: String(item.entities_ms),
          ...(item.received_ms ? { receivedMs: String(item.received_ms) } : {}),
        },
      },
      meta,
      text
    );
  }

  function addFeed(items) {
    const now = Date.now();
    for (const item of items) {
      item.received_ms = now;
      state.arrivals.push(now);
    }
    state.feed.push(...items);
    if (state.feed.length > FEED_KEPT) state.feed.splice(0, state.feed.length - FEED_KEPT);
    renderFeed(items);
    if (state.brand && state.page && items.some((i) => i.brands.includes(state.brand))) {
      loadBrand(false);
    }
  }

  function renderFeed(fresh) {
    const wanted = state.feedBrand;
    const shown = state.feed.filter((i) => !wanted || i.brands.includes(wanted)).slice(-FEED_SHOWN).reverse();
    const isFresh = new Set((fresh || []).map((i) => i.post_id));
    $("feed").replaceChildren(...shown.map((i) => postItem(i, isFresh.has(i.post_id))));
    $("feed-empty").hidden = shown.length > 0;
    $("feed-empty").textContent = wanted ? "No recent post mentions " + wanted + "." : "Waiting for entity events…";
  }

  function renderFeedBrands() {
    const select = $("feed-brand");
    const brands = state.board ? state.board.rows.map((r) => [r.brand, r.name]) : [];
    if (state.feedBrand && !brands.some(([b]) => b === state.feedBrand)) brands.push([state.feedBrand, state.feedBrand]);
    brands.sort((a, b) => a[1].localeCompare(b[1]));
    const key = brands.map(([b]) => b).join("|");
    if (select.dataset.key === key) return;
    select.dataset.key = key;
    select.replaceChildren(
      el("option", { value: "", text: "all brands" }),
      ...brands.map(([b, name]) => el("option", { value: b, text: name }))
    );
    select.value = state.feedBrand;
  }

  // ---- brand page

  let brandTimer = null;
  let brandLoading = false;
  const charts = { mentions: null, sentiment: null };

  function loadBrand(now) {
    if (brandTimer && !now) return; // at most one load per second while updates pour in
    clearTimeout(brandTimer);
    brandTimer = setTimeout(() => (brandTimer = null), 1000);
    if (brandLoading && !now) return;
    brandLoading = true;
    const brand = state.brand;
    const window = state.window;
    fetch("/api/brand/" + encodeURIComponent(brand) + "?window=" + encodeURIComponent(window))
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then((page) => {
        if (state.brand === brand && state.window === window) {
          state.page = page;
          renderBrand();
        }
      })
      .catch(() => setStatus("reconnecting"))
      .finally(() => (brandLoading = false));
  }

  function stat(value, label) {
    return el("div", { class: "stat" }, el("b", { text: value }), el("span", { text: label }));
  }

  function renderBrand() {
    const page = state.page;
    const f = family(state.window);
    $("brand-name").textContent = page ? page.name : state.brand;
    $("mentions-caption").textContent =
      "Mentions per " + state.window + " window, last " + (f.size_s < 3600 ? "hour" : "day") + " (the last window is still open)";
    if (!page) {
      $("brand-stats").replaceChildren();
      return;
    }
    const row = page.row;
    $("brand-spike").replaceChildren(row && row.spike ? el("span", { class: "badge", text: "SPIKE z " + row.spike.score }) : "");
    const secs = f.size_s < 3600;
    $("brand-range").textContent = page.start ? state.window + " window " + clock(page.start, secs) + "–" + clock(page.end, secs) : "";
    const last = page.points.length ? page.points[page.points.length - 1] : null;
    const sentiment = last && last.sentiment !== null ? (last.sentiment > 0 ? "+" : "") + last.sentiment.toFixed(2) : "no sentiment yet";
    $("brand-stats").replaceChildren(
      stat(String(row ? row.mentions : last && last.start === page.start ? last.mentions : 0), "mentions"),
      stat(row ? pct(row.share) : "–", "share of voice"),
      stat(row && row.change !== null ? (row.change > 0 ? "+" : "") + pct(row.change, 0) : "–", "vs previous"),
      stat(String(row ? row.authors : last ? last.authors : 0), "authors"),
      stat(sentiment, "mean sentiment"),
      ...(row ? [polarityStat(row)].filter(Boolean) : [])
    );
    drawCharts(page);
    const chips = (items, isBrand) =>
      items.length
        ? items.map((c) =>
            el(
              "li",
              isBrand ? { class: "link", onclick: () => go(state.window, c.id) } : null,
              c.label ? el("mark", { class: "ent ent-" + c.label, text: c.label }) : null,
              c.label ? " " : null,
              c.name,
              el("b", { text: String(c.count) })
            )
          )
        : [el("li", { class: "muted", text: "none in this window" })];
    $("co-brands").replaceChildren(...chips(page.co_brands, true));
    $("co-entities").replaceChildren(...chips(page.co_entities, false));
    $("brand-posts").replaceChildren(...page.posts.map((p) => postItem(p, false)));
    $("brand-posts-empty").hidden = page.posts.length > 0;
  }

  function axis() {
    return { stroke: "#8b97ab", grid: { stroke: "#243047", width: 1 }, ticks: { stroke: "#243047" } };
  }

  function drawCharts(page) {
    if (typeof uPlot === "undefined") return;
    const xs = page.points.map((p) => p.start);
    // the whole span (an hour or a day) is on the axis, however few windows have data yet
    const f = family(state.window);
    const span = f.size_s < 3600 ? 3600 : 86400;
    charts.xrange = page.start ? [page.start - span + f.size_s, page.start] : [0, 1];
    const mentions = page.points.map((p) => p.mentions);
    const sentiments = page.points.map((p) => p.sentiment);
    const hasSentiment = sentiments.some((s) => s !== null);
    const width = Math.max(240, $("chart-mentions").clientWidth || 400);
    const key = state.brand + "|" + state.window;
    if (!charts.mentions || charts.key !== key) {
      for (const c of [charts.mentions, charts.sentiment]) if (c) c.destroy();
      charts.key = key;
      charts.mentions = new uPlot(
        {
          width,
          height: 200,
          legend: { show: false },
          scales: { x: { time: true, range: () => charts.xrange }, y: { range: (u, min, max) => [0, Math.max(4, max * 1.15)] } },
          series: [{}, { label: "mentions", stroke: "#5eb3ff", width: 2, fill: "rgba(94,179,255,0.14)", points: { size: 4 } }],
          axes: [axis(), axis()],
        },
        [xs, mentions],
        $("chart-mentions")
      );
      charts.sentiment = new uPlot(
        {
          width,
          height: 200,
          legend: { show: false },
          scales: { x: { time: true, range: () => charts.xrange }, y: { range: [-1, 1] } },
          series: [{}, { label: "mean sentiment", stroke: "#3fcf8e", width: 2, spanGaps: false, points: { size: 4 } }],
          axes: [axis(), axis()],
        },
        [xs, sentiments],
        $("chart-sentiment")
      );
    } else {
      charts.mentions.setData([xs, mentions]);
      charts.sentiment.setData([xs, sentiments]);
    }
    $("chart-sentiment").hidden = !hasSentiment;
    $("sentiment-empty").hidden = hasSentiment;
  }

  // ---- start

  function renderWindows() {
    $("windows").replaceChildren(
      ...windows.map((w) =>
        el("button", { type: "button", "aria-pressed": w === state.window ? "true" : "false", onclick: () => go(w, state.brand), text: w })
      )
    );
  }

  for (const th of document.querySelectorAll("th.sortable")) {
    th.addEventListener("click", () => sortBy(th.dataset.sort));
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") sortBy(th.dataset.sort);
    });
  }
  $("feed-brand").addEventListener("change", (e) => {
    state.feedBrand = e.target.value;
    renderFeed([]);
  });
  $("back").addEventListener("click", (e) => {
    e.preventDefault();
    go(state.window, null);
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => {
    const width = Math.max(240, $("chart-mentions").clientWidth || 400);
    for (const c of [charts.mentions, charts.sentiment]) if (c) c.setSize({ width, height: 200 });
  });
  setInterval(() => state.source && state.source.readyState === 1 && setStatus("live"), 2000);
  state.window = null;
  route();
  renderSpikes();
})();
