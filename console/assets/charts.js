// Time-series charts for the console's pages, on uPlot (vendored under /assets/vendor/uplot).
"use strict";

const Charts = (() => {
  const css = getComputedStyle(document.documentElement);
  const palette = css.getPropertyValue("--series").split(",").map((c) => c.trim()).filter(Boolean);
  const axisColor = css.getPropertyValue("--muted").trim();
  const gridColor = css.getPropertyValue("--line").trim();

  const axis = () => ({
    stroke: axisColor,
    grid: { stroke: gridColor, width: 1 },
    ticks: { stroke: gridColor, width: 1 },
  });

  // A chart of `names.length` series in `element`, sized to it; returns the uPlot instance.
  function timeSeries(element, names, unit) {
    const series = [{}].concat(names.map((name, i) => ({
      label: name,
      stroke: palette[i % palette.length],
      width: 2,
      spanGaps: false,
      value: (u, v) => (v == null ? "–" : v.toFixed(1) + (unit || "")),
    })));
    const width = () => Math.max(320, element.clientWidth - 16);
    const chart = new uPlot({
      width: width(),
      height: 240,
      series,
      axes: [axis(), axis()],
      scales: { x: { time: true } },
      cursor: { drag: { x: false, y: false } },
    }, [[]].concat(names.map(() => [])), element);
    window.addEventListener("resize", () => chart.setSize({ width: width(), height: 240 }));
    return chart;
  }

  return { timeSeries };
})();
