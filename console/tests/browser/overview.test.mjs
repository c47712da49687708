// The console in a real browser (Debian's chromium, driven by playwright-core), against a
// running lab: every system is listed and ready, traffic sent to the shortener shows up in its
// row and on the chart within seconds, the page works from the keyboard and reads in light and
// in dark; a request sent from a page comes back raw, a load from a page moves the server's
// throughput, a broken payment provider fails a payment, the limiter's Redis switched
// unreachable makes its fail-closed rule deny, every system's page draws its charts, and the
// shortener's mock interview moves its estimate and shows a claim holding.
// Screenshots go to $SCREENSHOT_DIR when it is set.
//
//   CONSOLE_URL=http://127.0.0.1:8080 SHORTENER_URL=http://127.0.0.1:8081 node overview.test.mjs

import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const consoleUrl = process.env.CONSOLE_URL ?? "http://127.0.0.1:8080";
const shortenerUrl = process.env.SHORTENER_URL ?? "http://127.0.0.1:8081";
const screenshots = process.env.SCREENSHOT_DIR;
// The lab's admin token and payments key, as it was started with them (SDLAB_ADMIN_TOKEN,
// PAYMENTS_DEMO_KEY).
const adminToken = process.env.ADMIN_TOKEN;
const paymentsKey = process.env.PAYMENTS_KEY;
// The rate limiter's decision API and the lab's caller key for it (RATE_LIMITER_CALLER_KEY).
const limiterUrl = process.env.LIMITER_URL ?? "http://127.0.0.1:8082";
const limiterKey = process.env.LIMITER_KEY;
const systems = ["url-shortener", "rate-limiter", "idempotency-demo", "notifier", "feed-service"];

// The flags this machine's chromium needs headless: no sandbox as root, and nothing that reaches
// for the network on its own (the closed network refuses it).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function step(name, body) {
  process.stdout.write(`- ${name} ... `);
  await body();
  console.log("ok");
}

// A decision of the rate limiter's `login` rule (5 a minute a key, failing closed without its
// store) for a key of its own, as a caller of the decision API asks for it.
let logins = 0;
async function login() {
  const response = await fetch(`${limiterUrl}/api/v1/check`, {
    method: "POST",
    headers: { authorization: `Bearer ${limiterKey}`, "content-type": "application/json" },
    body: JSON.stringify({ rule: "login", key: `browser-${process.pid}-${logins++}` }),
  });
  return response.status;
}

// Requests to the shortener for `seconds`, about 50 a second: unknown codes, each a 404.
async function traffic(seconds) {
  const until = Date.now() + seconds * 1000;
  let sent = 0;
  while (Date.now() < until) {
    await Promise.all(Array.from({ length: 5 }, () => fetch(`${shortenerUrl}/nothing-here-${sent++}`)));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return sent;
}

try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => message.type() === "error" && problems.push(message.text()));

  await step("the overview lists every system, each ready", async () => {
    await page.goto(consoleUrl);
    for (const system of systems) {
      const row = page.locator(`tr[data-system="${system}"]`);
      await row.locator(".replica.ready").first().waitFor({ timeout: 15_000 });
    }
  });

  await step("traffic to the shortener shows in its row and on the chart", async () => {
    const sent = traffic(4);
    const row = page.locator('tr[data-system="url-shortener"]');
    await page.waitForFunction(
      () => {
        const cell = document.querySelector('tr[data-system="url-shortener"] [data-field="requests_per_s"]');
        return cell && Number(cell.textContent) >= 10;
      },
      null,
      { timeout: 15_000 },
    );
    await sent;
    const errors = Number(await row.locator('[data-field="client_errors_per_s"]').textContent());
    assert.ok(errors > 0, "the 404s show as 4xx");
    assert.equal(await page.locator("#throughput canvas").count(), 1, "the chart is drawn");
    const legend = await page.locator("#throughput .u-legend").textContent();
    assert.match(legend, /url-shortener/);
  });

  await step("the page is usable from the keyboard", async () => {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement.textContent.trim());
    assert.equal(focused, "Skip to the content");
    await page.keyboard.press("Tab");
    const next = await page.evaluate(() => document.activeElement.getAttribute("href"));
    assert.equal(next, "/", "then the console's own link");
  });

  await step("it reads in light and in dark", async () => {
    const background = () =>
      page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (screenshots) await page.screenshot({ path: `${screenshots}/overview.png`, fullPage: true });
    const light = await background();
    await page.emulateMedia({ colorScheme: "dark" });
    // Reloaded, as a page opened in a dark room would be: the chart takes its colours at load.
    await page.reload();
    await page.locator('tr[data-system="url-shortener"] .replica.ready').waitFor();
    await page.waitForTimeout(2_000);
    const dark = await background();
    assert.notEqual(light, dark);
    if (screenshots) await page.screenshot({ path: `${screenshots}/overview-dark.png`, fullPage: true });
  });

  await step("a system page charts its own signals", async () => {
    await page.emulateMedia({ colorScheme: "light" });
    await page.getByRole("link", { name: "url-shortener" }).first().click();
    await page.waitForURL(/\/systems\/url-shortener$/);
    const sent = traffic(3);
    // The shortener's cache lookups: a chart of their own, made when the first one shows up.
    await page.locator("#signal-shortener_cache_lookups_total canvas").waitFor({ timeout: 15_000 });
    await sent;
    for (const id of ["throughput", "latency", "statuses"]) {
      assert.equal(await page.locator(`#${id} canvas`).count(), 1, `${id} is drawn`);
    }
    await page.getByText("Read url-shortener's DESIGN.md").click();
    await page.locator("article.design h1").waitFor();
  });

  await step("a request sent from the page comes back raw", async () => {
    const select = page.locator("#operation");
    await select.locator("option", { hasText: "POST /api/v1/keys" }).waitFor({ state: "attached" });
    const value = await select.locator("option", { hasText: "POST /api/v1/keys" }).getAttribute("value");
    await select.selectOption(value);
    assert.match(await page.locator("#body").inputValue(), /"name"/, "the body is ready-made");
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator("#response", { hasText: "HTTP/1.1 201 Created" }).waitFor();
    assert.match(await page.locator("#request").textContent(), /^POST \/api\/v1\/keys HTTP\/1.1/);
    assert.match(await page.locator("#response").textContent(), /"key":"sk_[0-9a-f]{40}"/);
    if (screenshots) {
      await page.locator("#try-it").screenshot({ path: `${screenshots}/url-shortener-try-it.png` });
    }
  });

  await step("a 5-second load from the page moves the server's own throughput", async () => {
    await page.goto(`${consoleUrl}/systems/url-shortener`);
    await page.locator("#load-rate").fill("50");
    await page.locator("#load-duration").fill("5");
    const started = Date.now();
    await page.getByRole("button", { name: "Start" }).click();
    await page.locator('#load-status[data-state="finished"]').waitFor({ timeout: 60_000 });
    assert.match(await page.locator("#load-status").textContent(), /thresholds met/);
    assert.equal(await page.locator("#load-chart canvas").count(), 1);
    // The server's side of the same seconds, as its throughput chart draws them.
    await page.waitForTimeout(2_000);
    const points = await (await fetch(`${consoleUrl}/api/systems/url-shortener/points?since=${started}`)).json();
    const busiest = Math.max(...points.system.map((point) => point.requests_per_s));
    assert.ok(busiest >= 30, `the shortener served ${busiest} requests/s at most`);
    if (screenshots) await page.locator("#load-it").screenshot({ path: `${screenshots}/url-shortener-load-it.png` });
  });

  await step("a provider broken from the page fails a payment; undone, the same key succeeds", async () => {
    await page.goto(`${consoleUrl}/systems/idempotency-demo`);
    await page.locator("#admin-token").fill(adminToken);
    await page.getByRole("button", { name: "Open the switches" }).click();
    const provider = page.locator('form.switch[data-switch="provider"]');
    await provider.locator('input[name="error_rate"]').fill("1");
    await provider.getByRole("button", { name: "Apply" }).click();
    await page.locator('form.switch.on[data-switch="provider"]').waitFor();

    const pay = async () => {
      await page.locator("#method").fill("POST");
      await page.locator("#path").fill("/v1/payments");
      await page.locator("#headers").fill(
        `authorization: Bearer ${paymentsKey}\nidempotency-key: console-test-1\ncontent-type: application/json`,
      );
      await page.locator("#body").fill('{"amount": 2000, "currency": "usd", "source": "tok_visa"}');
      await page.locator("#response").evaluate((pre) => { pre.textContent = ""; });
      await page.getByRole("button", { name: "Send" }).click();
      await page.locator("#response", { hasText: "HTTP/1.1" }).waitFor();
      return page.locator("#response").textContent();
    };
    assert.match(await pay(), /^HTTP\/1.1 502/, "the provider's failure is a 502");
    if (screenshots) await page.locator("#break-it").screenshot({ path: `${screenshots}/idempotency-demo-break-it.png` });

    await provider.getByRole("button", { name: "Undo" }).click();
    await page.locator('form.switch:not(.on)[data-switch="provider"]').waitFor();
    assert.match(await pay(), /^HTTP\/1.1 201/, "the same key, retried, is charged");
  });

  await step("the limiter's Redis switched unreachable: its fail-closed rule denies; undone, it allows", async () => {
    await page.goto(`${consoleUrl}/systems/rate-limiter`);
    await page.locator("#admin-token").fill(adminToken);
    await page.getByRole("button", { name: "Open the switches" }).click();
    const redis = page.locator('form.switch[data-switch="redis"]');
    assert.equal(await login(), 200, "before: allowed");
    await redis.locator('input[name="unreachable"]').check();
    await redis.getByRole("button", { name: "Apply" }).click();
    await page.locator('form.switch.on[data-switch="redis"]').waitFor();

    const started = Date.now();
    const denied = [];
    for (let i = 0; i < 20; i++) denied.push(await login());
    assert.deepEqual([...new Set(denied)], [503], "every login decision fails closed");
    // The denials as the console charts them: the limiter's own counter, scraped.
    const failedClosed = async () => {
      const points = await (await fetch(`${consoleUrl}/api/systems/rate-limiter/points?since=${started}`)).json();
      return Math.max(0, ...points.system.map((point) =>
        Object.entries(point.rates)
          .filter(([series]) => series.startsWith("ratelimit_decisions_total") && series.includes('outcome="failed_closed"'))
          .reduce((sum, [, rate]) => sum + rate, 0)));
    };
    const until = Date.now() + 15_000;
    while ((await failedClosed()) === 0 && Date.now() < until) await page.waitForTimeout(500);
    assert.ok((await failedClosed()) > 0, "the failed-closed decisions show in the console");
    await page.locator("#signal-ratelimit_decisions_total canvas").waitFor({ timeout: 15_000 });
    if (screenshots) await page.locator("#break-it").screenshot({ path: `${screenshots}/rate-limiter-break-it.png` });

    await redis.getByRole("button", { name: "Undo" }).click();
    await page.locator('form.switch:not(.on)[data-switch="redis"]').waitFor();
    assert.equal(await login(), 200, "undone: allowed again");
  });

  await step("every system's page draws its charts", async () => {
    for (const system of systems) {
      await page.goto(`${consoleUrl}/systems/${system}`);
      await page.locator("#throughput canvas").waitFor({ timeout: 15_000 });
      await page.locator("#signals canvas").first().waitFor({ timeout: 15_000 });
      await page.waitForTimeout(1_500);
      if (screenshots) await page.screenshot({ path: `${screenshots}/${system}.png`, fullPage: true });
    }
  });

  await step("the shortener's mock interview: its estimate moves, a claim is shown holding", async () => {
    await page.goto(`${consoleUrl}/systems/url-shortener`);
    await page.getByRole("tab", { name: "Mock interview" }).click();
    const phases = page.locator(".phase");
    await phases.nth(6).waitFor();
    assert.equal(await phases.count(), 7);
    assert.equal(new URL(page.url()).hash, "#interview");

    const form = page.locator("#estimate-inputs");
    const estimate = page.locator("#estimate-generated");
    await form.locator('input[name="reads_per_write"]').fill("100");
    await form.getByRole("button", { name: "Recompute" }).click();
    await page.waitForFunction(() => document.getElementById("estimate-generated").textContent.includes("115,741/s average"));
    await form.locator('input[name="reads_per_write"]').fill("-1");
    await form.getByRole("button", { name: "Recompute" }).click();
    await form.locator(".bad", { hasText: "reads_per_write" }).waitFor();
    // The browser logs the refusal (422) it was sent to provoke: expected, not a script error.
    const refusal = problems.findIndex((problem) => problem.includes("422"));
    assert.notEqual(refusal, -1, "the refusal reached the browser");
    problems.splice(refusal, 1);
    assert.match(await estimate.textContent(), /115,741\/s average/, "a refused input changes nothing");

    const button = page.locator('button[data-demo="cached-redirect"]');
    await button.click();
    const shown = page.locator('button[data-demo="cached-redirect"] + pre.shown[data-held]');
    await shown.waitFor({ timeout: 30_000 });
    const text = await shown.textContent();
    assert.equal(await shown.getAttribute("data-held"), "true", text);
    assert.match(text, /held: a cached redirect sends no query to the database/);
    if (screenshots) {
      await page.locator('.phase[data-kind="deep-dives"]').screenshot({ path: `${screenshots}/url-shortener-interview.png` });
    }

    await page.locator("#practice").check();
    const first = phases.first();
    assert.equal(await first.locator(".answer").isVisible(), false, "practice hides the answer");
    await first.getByRole("button", { name: "Start the clock" }).click();
    await first.getByRole("button", { name: "Show our answer" }).click();
    await first.locator(".answer").waitFor();
    if (screenshots) await page.screenshot({ path: `${screenshots}/url-shortener-practice.png` });
  });

  assert.deepEqual(problems, [], "no script error on the page");
} finally {
  await browser.close();
}
