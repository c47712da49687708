// The overview: refreshes the table from /api/overview every scrape, and charts each system's
// requests per second from its history (/api/systems/{name}/points).
"use strict";

(() => {
  const table = document.getElementById("systems");
  const every = Number(table.dataset.scrapeEveryMs) || 1000;
  const names = [...table.querySelectorAll("tbody tr")].map((row) => row.dataset.system);

  const fixed = (value, digits) => (value == null ? "–" : value.toFixed(digits));

  // Time (s) -> requests/s per system; uPlot wants one x array and a y array per series.
  const rates = new Map();
  const chart = Charts.timeSeries(document.getElementById("throughput"), names, "/s");

  function remember(name, point) {
    const t = point.at / 1000;
    if (!rates.has(t)) rates.set(t, new Array(names.length).fill(null));
    rates.get(t)[names.indexOf(name)] = point.up ? point.requests_per_s : null;
  }

  function redraw() {
    const limit = 15 * 60 * 1000 / every;
    const times = [...rates.keys()].sort((a, b) => a - b);
    while (times.length > limit) rates.delete(times.shift());
    const data = [times].concat(names.map((_, i) => times.map((t) => rates.get(t)[i])));
    chart.setData(data);
  }

  function replica(instance) {
    const span = document.createElement("span");
    const state = !instance.up ? "down" : instance.ready ? "ready" : "unready";
    span.className = "replica " + state;
    span.textContent = state === "unready" ? "not ready" : state;
    span.title = instance.url + (instance.error ? ": " + instance.error : "");
    return span;
  }

  // Each backend /readyz checks, its state, and what it is (embedded, or the engine and where).
  function checks(instance) {
    const spans = [];
    const backends = instance.backends || {};
    const names = new Set([...Object.keys(instance.checks || {}), ...Object.keys(backends)]);
    for (const name of names) {
      const state = (instance.checks || {})[name];
      // A backend /readyz does not probe (the feed's topics, say) is named, without a state.
      const span = document.createElement("span");
      if (state !== undefined) span.className = "check " + (typeof state === "string" ? state : "error");
      span.textContent = name + (typeof state === "string" ? ": " + state : state ? ": down" : "");
      if (state && state.error) span.title = state.error;
      const line = document.createElement("div");
      line.append(span);
      if (backends[name]) {
        const what = document.createElement("small");
        what.className = "backend";
        what.textContent = backends[name];
        line.append(" ", what);
      }
      spans.push(line);
    }
    return spans;
  }

  function show(system) {
    const row = table.querySelector(`tr[data-system="${system.name}"]`);
    if (!row) return;
    const cell = (field) => row.querySelector(`[data-field="${field}"]`);
    const point = system.latest;
    cell("replicas").replaceChildren(...system.instances.map(replica));
    cell("backends").replaceChildren(...(system.instances[0] ? checks(system.instances[0]) : []));
    cell("requests_per_s").textContent = fixed(point && point.requests_per_s, 1);
    cell("p50_ms").textContent = fixed(point && point.p50_ms, 2);
    cell("p99_ms").textContent = fixed(point && point.p99_ms, 2);
    cell("client_errors_per_s").textContent = fixed(point && point.client_errors_per_s, 1);
    cell("server_errors_per_s").textContent = fixed(point && point.server_errors_per_s, 1);
    const headline = system.headline;
    cell("headline").textContent = headline
      ? `${headline.label}: ${headline.value == null ? "–" : fixed(headline.value, 1) + headline.unit}`
      : "–";
    if (point) remember(system.name, point);
  }

  async function refresh() {
    try {
      const response = await fetch("/api/overview");
      if (response.ok) {
        const overview = await response.json();
        overview.systems.forEach(show);
        redraw();
      }
    } finally {
      setTimeout(refresh, every);
    }
  }

  async function history() {
    await Promise.all(names.map(async (name) => {
      const response = await fetch(`/api/systems/${encodeURIComponent(name)}/points`);
      if (!response.ok) return;
      const points = await response.json();
      points.system.forEach((point) => remember(name, point));
    }));
    redraw();
  }

  history().finally(refresh);
})();
