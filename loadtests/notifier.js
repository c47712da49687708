// k6 load test for the notifier (see loadtests/README.md).
//
//   k6 run loadtests/notifier.js                    # smoke: ~10 s, every rule once per iteration
//   k6 run -e SCENARIO=load loadtests/notifier.js   # notifications at RATE/s for DURATION
//
// Environment: BASE_URL (default http://127.0.0.1:8083), API_KEY (a caller's key the service
// knows: start it with NOTIFIER_CALLER_KEY set to the same value), PROVIDER_URL (the SMS/push simulator,
// default http://127.0.0.1:8093), MAILBOX_URL (the mailbox's page, default http://127.0.0.1:8025),
// WEBHOOK_URL (optional: users get it as their webhook, and its deliveries must succeed; the
// service refuses private addresses unless started with NOTIFIER_WEBHOOK_ALLOW_PRIVATE=true),
// RATE and DURATION (load, defaults 50 and 20s), THROTTLE_LIMIT (the service's
// NOTIFIER_THROTTLE_LIMIT, default 20) and SETTLE (how long the load scenario waits for the
// deliveries at the end, default 120s).
//
// Both scenarios end by counting at the providers, where a person would notice: every delivery
// this run made is at the simulator (GET /v1/messages) or the mailbox (GET /mailbox/messages)
// exactly once, or the run fails (`lost_deliveries`, `duplicate_deliveries`, both `count==0`).
// A duplicate is a message delivered twice or a provider request that repeated a key already
// delivered (the simulator's `repeats`, the mailbox's `duplicates`): the providers absorb those
// by the idempotency key, a real provider without one would not. Both providers list only their
// newest messages, so the load scenario counts by their counters (see `countLoad`).
//
// The router drops normal notifications past THROTTLE_LIMIT per user and channel per hour. The
// smoke scenario makes a new user per iteration; the load scenario spreads its notifications over
// RATE × DURATION / THROTTLE_LIMIT users, so no user reaches the limit and the service runs with
// its default settings.

import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8083';
const API_KEY = __ENV.API_KEY || 'sk_a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0';
const PROVIDER = __ENV.PROVIDER_URL || 'http://127.0.0.1:8093';
const MAILBOX = __ENV.MAILBOX_URL || 'http://127.0.0.1:8025';
const WEBHOOK = __ENV.WEBHOOK_URL || '';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const RATE = parseInt(__ENV.RATE || '50', 10);
const DURATION = __ENV.DURATION || '20s';
const THROTTLE_LIMIT = parseInt(__ENV.THROTTLE_LIMIT || '20', 10);
const SETTLE_SECONDS = seconds(__ENV.SETTLE || '120s');
// A delivery is settled in one of these; until then its notification is polled.
const FINAL = ['delivered', 'skipped', 'throttled', 'dead'];
// How long a smoke iteration waits for its notifications to settle: well inside the scenario's
// graceful stop, so that a pipeline that never delivers fails the checks instead of having its
// iterations cut off uncounted.
const SETTLE_SMOKE_SECONDS = 20;

const serverErrors = new Counter('server_errors');
const lostDeliveries = new Counter('lost_deliveries');
const duplicateDeliveries = new Counter('duplicate_deliveries');
const JSON_HEADERS = { headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` } };
// 4xx answers are part of what the smoke scenario checks, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const scenarios = {
  smoke: { smoke: { executor: 'constant-vus', vus: 2, duration: '10s', gracefulStop: `${SETTLE_SMOKE_SECONDS + 20}s`, exec: 'smoke' } },
  load: {
    load: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 20,
      // Enough that k6, not the service, is never what drops an iteration at a few hundred a
      // second with a slow tail.
      maxVUs: 1000,
      exec: 'load',
    },
  },
};

export const options = {
  scenarios: scenarios[SCENARIO],
  setupTimeout: '120s',
  teardownTimeout: `${SETTLE_SECONDS + 60}s`,
  thresholds: {
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    lost_deliveries: ['count==0'],
    duplicate_deliveries: ['count==0'],
    // The load scenario's count expects RATE × DURATION notifications: every one must be sent.
    // The teardown cannot tell a dropped iteration from a lost notification, so each one dropped
    // also counts as lost, once per channel (three): read this threshold first.
    dropped_iterations: ['count==0'],
    'http_req_duration{name:notify}': ['p(99)<10000'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// "20s", "1m30s", "2h" → seconds.
function seconds(text) {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(h|m|s)/g)) total += parseInt(n, 10) * { h: 3600, m: 60, s: 1 }[unit];
  return total;
}

function request(method, url, body, name) {
  const response = http.request(method, url, body === undefined ? null : JSON.stringify(body), { ...JSON_HEADERS, tags: { name } });
  if (response.status >= 500) serverErrors.add(1);
  return response;
}

function notify(body) {
  return request('POST', `${BASE}/v1/notifications`, body, 'notify');
}

function putUser(id, body) {
  const response = request('PUT', `${BASE}/v1/users/${id}`, body, 'put user');
  check(response, { 'a user is stored': (r) => r.status === 200 });
}

// The mailbox's counters: messages answered 250, and of those, repeats of a Message-ID it holds.
function mailboxCounts() {
  const response = http.get(`${MAILBOX}/mailbox/messages`);
  if (response.status !== 200) fail(`reading the mailbox at ${MAILBOX}: ${response.status}`);
  const { received, duplicates } = response.json();
  return { received, duplicates };
}

// The simulator's listing: its counters (messages delivered, and requests that repeated a key it
// held) and its newest messages.
function providerListing() {
  const response = http.get(`${PROVIDER}/v1/messages`);
  if (response.status !== 200) fail(`reading the simulator at ${PROVIDER}: ${response.status}`);
  return response.json();
}

function providerCounts() {
  const { delivered, repeats } = providerListing();
  return { delivered, repeats };
}

export function setup() {
  if (http.get(`${BASE}/healthz`).status !== 200) fail(`the notifier does not answer at ${BASE}`);
  const keyed = http.get(`${BASE}/v1/dlq`, JSON_HEADERS);
  if (keyed.status !== 200) {
    fail(`the API key is not accepted (${keyed.status}): start the service with NOTIFIER_CALLER_KEY=${API_KEY}`);
  }
  const anonymous = http.get(`${BASE}/v1/dlq`);
  check(anonymous, { 'a request without a key is refused': (r) => r.status === 401 });
  const data = {
    run: `k6-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`,
    mailbox: mailboxCounts(),
    provider: providerCounts(),
  };
  if (SCENARIO === 'load') {
    data.expected = RATE * seconds(DURATION);
    data.users = Math.max(1, Math.ceil(data.expected / THROTTLE_LIMIT));
    // 50 at a time: a long run at a high rate needs thousands of users, and the load waits for them.
    for (let u = 0; u < data.users; u += 50) {
      const batch = [];
      for (let v = u; v < Math.min(u + 50, data.users); v++) {
        const id = `${data.run}-u${v}`;
        const user = { email: `${id}@example.com`, phone: phone(v), push_tokens: [`${id}-device`] };
        batch.push(['PUT', `${BASE}/v1/users/${id}`, JSON.stringify(user), { ...JSON_HEADERS, tags: { name: 'put user' } }]);
      }
      for (const response of http.batch(batch)) {
        if (response.status >= 500) serverErrors.add(1);
        check(response, { 'a user is stored': (r) => r.status === 200 });
      }
    }
  }
  return data;
}

function phone(n) {
  return `+1555${String(n % 10000000).padStart(7, '0')}`;
}

// Polls notifications until every channel's delivery of each is final, or the guard runs out;
// returns each one's statuses by channel, as last read.
function settled(ids) {
  const deadline = Date.now() + SETTLE_SMOKE_SECONDS * 1000;
  let records;
  for (;;) {
    records = ids.map((id) => {
      const response = request('GET', `${BASE}/v1/notifications/${id}`, undefined, 'read');
      return response.status === 200 ? response.json() : { deliveries: [] };
    });
    const done = records.every((r) => r.deliveries.length > 0 && r.deliveries.every((d) => FINAL.includes(d.status)));
    if (done || Date.now() >= deadline) {
      check(done, { 'every delivery settles': (d) => d });
      break;
    }
    sleep(0.1);
  }
  return records.map((r) => Object.fromEntries(r.deliveries.map((d) => [d.channel, d.status])));
}

function pointer(response) {
  const errors = response.json('errors');
  return errors && errors.length ? errors[0].pointer : undefined;
}

// One user on every channel (webhook only with WEBHOOK_URL), opted out of SMS: a normal
// notification (and its repeat), a critical one that reaches SMS anyway, four invalid ones; then
// each delivery's status, and each message at its provider exactly once.
export function smoke({ run }) {
  const user = `${run}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  putUser(user, {
    email: `${user}@example.com`,
    phone: phone(exec.scenario.iterationInTest),
    push_tokens: [`${user}-a`, `${user}-b`],
    webhook_url: WEBHOOK || undefined,
    preferences: { sms: false },
  });

  const welcome = { user_id: user, template: 'welcome', data: { name: user }, idempotency_key: `${user}-welcome` };
  const normal = notify(welcome);
  const repeat = notify(welcome);
  const critical = notify({ user_id: user, template: 'password_reset', data: { code: '424242' }, priority: 'critical' });
  check(normal, { 'a notification is 202 accepted': (r) => r.status === 202 && r.json('status') === 'accepted' });
  check(repeat, { 'a repeat of its key is the first notification': (r) => r.status === 202 && r.json('id') === normal.json('id') });
  check(critical, { 'a critical notification is 202': (r) => r.status === 202 });

  const invalid = [
    [{ user_id: user, template: 'no-such-template', data: {} }, '#/template'],
    [{ user_id: `${user}-nobody`, template: 'welcome', data: { name: 'x' } }, '#/user_id'],
    [{ user_id: user, template: 'welcome', data: {} }, '#/data/name'],
    [{ user_id: user, template: 'welcome', data: { name: 'x' }, channels: ['fax'] }, '#/channels/0'],
  ];
  for (const [body, field] of invalid) {
    check(notify(body), { [`bad input is 422 naming ${field}`]: (r) => r.status === 422 && pointer(r) === field });
  }
  if (normal.status !== 202 || critical.status !== 202) return;

  const normalId = normal.json('id');
  const criticalId = critical.json('id');
  const everyChannel = WEBHOOK ? ['email', 'push', 'webhook'] : ['email', 'push'];
  const [first, second] = settled([normalId, criticalId]);
  check(first, {
    'a normal notification skips the opted-out channel': (s) => s.sms === 'skipped',
    'and is delivered on every other': (s) => everyChannel.every((c) => s[c] === 'delivered'),
  });
  check(second, { 'a critical notification is delivered on every channel, opted out or not': (s) => [...everyChannel, 'sms'].every((c) => s[c] === 'delivered') });

  // Each key this iteration should have produced, exactly once at its provider; nothing for the
  // SMS the normal notification skipped.
  const atProvider = {};
  for (const m of providerListing().messages) {
    const seen = (atProvider[m.idempotency_key] = atProvider[m.idempotency_key] || { copies: 0, repeats: 0 });
    seen.copies += 1;
    seen.repeats += m.repeats;
  }
  const mailbox = {};
  for (const m of http.get(`${MAILBOX}/mailbox/messages`).json('messages')) {
    if (m.idempotency_key) mailbox[m.idempotency_key] = (mailbox[m.idempotency_key] || 0) + 1;
  }
  const expected = [`${criticalId}:sms`];
  for (const id of [normalId, criticalId]) expected.push(`${id}:push:0`, `${id}:push:1`);
  for (const key of expected) {
    const seen = atProvider[key] || { copies: 0, repeats: 0 };
    if (seen.copies === 0) lostDeliveries.add(1);
    duplicateDeliveries.add(Math.max(0, seen.copies - 1) + seen.repeats);
  }
  for (const key of [`${normalId}:email`, `${criticalId}:email`]) {
    if (!mailbox[key]) lostDeliveries.add(1);
    duplicateDeliveries.add(Math.max(0, (mailbox[key] || 0) - 1));
  }
  check(atProvider, { 'an opted-out channel gets nothing': (p) => !p[`${normalId}:sms`] });
}

// One notification on email, SMS and push, numbered by iteration so the count can find it.
export function load({ run, users, expected }) {
  const i = exec.scenario.iterationInTest;
  // k6 starts an iteration at both ends of the duration, RATE × DURATION + 1 in all, and the
  // count expects RATE × DURATION: the extra one sends nothing (else it counted as a duplicate,
  // or not, by whether it was delivered before the count was done).
  if (i >= expected) return;
  const response = notify({
    user_id: `${run}-u${i % users}`,
    template: 'welcome',
    data: { name: `${run}/${i}` },
    channels: ['email', 'sms', 'push'],
    idempotency_key: `${run}-${i}`,
  });
  check(response, { 'a notification is 202 accepted': (r) => r.status === 202 });
}

// The load scenario's count. Notification i of this run is one email, one SMS and one push (each
// load user has one device). The mailbox and the simulator keep only their newest messages (the
// simulator forgets a key with its message, as a provider's retention window ends), so a long
// run's first deliveries may have left their listings: both are counted by the providers'
// counters against their values at setup (run nothing else against them meanwhile). Messages
// beyond the expected number were delivered twice; requests that repeated a key the provider
// held are duplicates it absorbed.
function countLoad({ expected, mailbox, provider }) {
  const deadline = Date.now() + SETTLE_SECONDS * 1000;
  let phone;
  let emails;
  for (;;) {
    const nowPhone = providerCounts();
    phone = { delivered: nowPhone.delivered - provider.delivered, repeats: nowPhone.repeats - provider.repeats };
    const now = mailboxCounts();
    emails = { kept: now.received - now.duplicates - (mailbox.received - mailbox.duplicates), duplicates: now.duplicates - mailbox.duplicates };
    if ((phone.delivered >= 2 * expected && emails.kept >= expected) || Date.now() > deadline) break;
    sleep(1);
  }
  lostDeliveries.add(Math.max(0, 2 * expected - phone.delivered));
  duplicateDeliveries.add(Math.max(0, phone.delivered - 2 * expected) + phone.repeats);
  lostDeliveries.add(Math.max(0, expected - emails.kept));
  duplicateDeliveries.add(emails.duplicates);
  console.log(`${expected} notifications of this run: ${phone.delivered} SMS and push messages, ${emails.kept} emails at the providers` +
    ' (an iteration k6 dropped was never sent, and is among the missing: see dropped_iterations)');
}

export function teardown(data) {
  if (SCENARIO === 'load') {
    countLoad(data);
  } else {
    // Repeats of a Message-ID the mailbox already held: an email sent twice.
    duplicateDeliveries.add(mailboxCounts().duplicates - data.mailbox.duplicates);
  }
}
