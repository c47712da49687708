// A system page's "Load it": starts the system's k6 scenario (POST /api/systems/{name}/load),
// follows the run (GET /api/load) every second while it lasts, charts k6's requests per second
// and latency, and stops it (DELETE /api/load).
"use strict";

(() => {
  const section = document.getElementById("load-it");
  if (!section) return;
  const name = document.getElementById("system").dataset.system;
  const status = document.getElementById("load-status");
  const log = document.getElementById("load-log");
  const chart = Charts.timeSeries(document.getElementById("load-chart"), ["requests/s", "p50 ms", "p99 ms"], "");
  let following = false;

  function show(run) {
    if (!run || run.system !== name) return false;
    const times = run.points.map((p) => p.at / 1000);
    chart.setData([
      times,
      run.points.map((p) => p.requests),
      run.points.map((p) => p.p50_ms),
      run.points.map((p) => p.p99_ms),
    ]);
    const failed = run.points.reduce((sum, p) => sum + p.failed, 0);
    const sent = run.points.reduce((sum, p) => sum + p.requests, 0);
    const where = `${run.rate}/s for ${run.duration_s} s: ${sent} requests, ${failed} failed`;
    const states = {
      running: "Running",
      stopped: "Stopped",
      finished: run.state.exit_code === 0 ? "Finished, thresholds met" : `Finished, k6 exited ${run.state.exit_code}`,
      failed: `Failed: ${run.state.reason}`,
    };
    status.textContent = `${states[run.state.state]} (${where}).`;
    status.dataset.state = run.state.state;
    log.hidden = run.log.length === 0;
    log.textContent = run.log.join("\n");
    return run.state.state === "running";
  }

  async function follow() {
    if (following) return;
    following = true;
    try {
      for (;;) {
        const response = await fetch("/api/load");
        if (!response.ok || !show(await response.json())) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } finally {
      following = false;
    }
  }

  document.getElementById("load-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(`/api/systems/${encodeURIComponent(name)}/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        rate: Number(document.getElementById("load-rate").value),
        duration_s: Number(document.getElementById("load-duration").value),
      }),
    });
    const body = await response.json();
    if (!response.ok) {
      status.textContent = body.detail || body.title;
      status.dataset.state = "refused";
      return;
    }
    show(body);
    follow();
  });

  document.getElementById("load-stop").addEventListener("click", async () => {
    await fetch("/api/load", { method: "DELETE" });
    follow();
  });

  follow();
})();
