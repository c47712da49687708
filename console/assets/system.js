// A system's page: loads its history (/api/systems/{name}/points), draws its charts, then asks
// every scrape for what is newer. Its own signals are every counter it exports (as a rate) and
// every gauge (as it is: a backlog, a lag, a fault switch), one chart per metric with a series
// per label set, found in the data as they appear.
"use strict";

(() => {
  const section = document.getElementById("system");
  const name = section.dataset.system;
  const every = Number(section.dataset.scrapeEveryMs) || 1000;
  const keep = (Number(section.dataset.windowMinutes) || 15) * 60 * 1000;
  const points = [];

  // `metric{a="1"}` -> ["metric", "a=1"]
  function split(series) {
    const brace = series.indexOf("{");
    if (brace < 0) return [series, "total"];
    return [series.slice(0, brace), series.slice(brace + 1, -1).replaceAll('"', "")];
  }

  const fixed = [
    { id: "throughput", unit: "/s", series: [
      ["requests", (p) => p.requests_per_s],
      ["4xx", (p) => p.client_errors_per_s],
      ["5xx", (p) => p.server_errors_per_s],
    ] },
    { id: "latency", unit: " ms", series: [
      ["p50", (p) => p.p50_ms],
      ["p99", (p) => p.p99_ms],
    ] },
  ];
  const charts = new Map();

  function chart(id, element, labels, unit) {
    const existing = charts.get(id);
    if (existing && existing.labels.join() === labels.join()) return existing;
    if (existing) existing.plot.destroy();
    element.replaceChildren();
    const made = { labels, plot: Charts.timeSeries(element, labels, unit) };
    charts.set(id, made);
    return made;
  }

  function draw() {
    const times = points.map((p) => p.at / 1000);
    for (const spec of fixed) {
      const labels = spec.series.map(([label]) => label);
      const made = chart(spec.id, document.getElementById(spec.id), labels, spec.unit);
      made.plot.setData([times].concat(spec.series.map(([, value]) =>
        points.map((p) => (p.up ? value(p) : null)))));
    }
    // Statuses and the system's own metrics, grouped from the series' names: counters as rates,
    // gauges as their values.
    const groups = new Map();
    const group = (key, label, series, kind) => {
      if (!groups.has(key)) groups.set(key, { kind, members: new Map() });
      groups.get(key).members.set(label, series);
    };
    for (const point of points) {
      for (const series of Object.keys(point.rates)) {
        const [metric, labels] = split(series);
        if (metric === "http_requests_total") group("statuses", labels.replace(/^route=/, ""), series, "rates");
        else group(metric, labels, series, "rates");
      }
      for (const series of Object.keys(point.gauges)) {
        const [metric, labels] = split(series);
        group(metric, labels, series, "gauges");
      }
    }
    const signals = document.getElementById("signals");
    for (const [key, { kind, members }] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
      const labels = [...members.keys()].sort();
      const perSecond = kind === "rates";
      let element = document.getElementById(key === "statuses" ? "statuses" : `signal-${key}`);
      if (!element) {
        const figure = document.createElement("figure");
        const caption = document.createElement("figcaption");
        caption.textContent = perSecond ? `${key}, per second` : key;
        element = document.createElement("div");
        element.className = "chart";
        element.id = `signal-${key}`;
        element.setAttribute("role", "img");
        element.setAttribute("aria-label", perSecond ? `${key} per second, by label` : `${key}, by label`);
        figure.append(caption, element);
        signals.append(figure);
      }
      const made = chart(key, element, labels, perSecond ? "/s" : "");
      made.plot.setData([times].concat(labels.map((label) =>
        points.map((p) => (p.up ? p[kind][members.get(label)] ?? (perSecond ? 0 : null) : null)))));
    }
  }

  async function load(since) {
    const query = since == null ? "" : `?since=${since}`;
    const response = await fetch(`/api/systems/${encodeURIComponent(name)}/points${query}`);
    if (!response.ok) return;
    const body = await response.json();
    points.push(...body.system);
    const oldest = Date.now() - keep;
    while (points.length && points[0].at < oldest) points.shift();
    draw();
  }

  async function refresh() {
    try {
      await load(points.length ? points[points.length - 1].at : null);
    } finally {
      setTimeout(refresh, every);
    }
  }

  refresh();
})();
