// k6 load test for the idempotent payments API (see loadtests/README.md).
//
//   k6 run loadtests/idempotency-demo.js                          # smoke: ~10 s, every rule once per iteration
//   k6 run -e SCENARIO=load loadtests/idempotency-demo.js         # unique keys at a fixed rate
//   k6 run -e SCENARIO=storm loadtests/idempotency-demo.js        # every payment sent several times at once
//   k6 run -e SCENARIO=bench loadtests/idempotency-demo.js        # closed loop, for bench-idempotency.sh
//
// Environment: BASE_URL (default http://127.0.0.1:8085), PROVIDER_URL (the simulator, default
// http://127.0.0.1:8095), API_KEY (a client key the service knows: start it with
// PAYMENTS_DEMO_KEY set to the same value), RATE and DURATION (load), COPIES (storm, default 5),
// VUS and DURATION (bench).
//
// Every scenario ends by counting, per idempotency key this run used, the payments and the
// provider's charges: each must be exactly one (thresholds `duplicate_payments` and
// `duplicate_charges`, both `count==0`), except in the bench scenario against the baseline
// without idempotency (NO_IDEMPOTENCY=1), where no keys are sent. The provider lists only its
// newest charges, so the charges are also counted by its total against its value at setup: run
// nothing else against the provider meanwhile.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8085';
const PROVIDER = __ENV.PROVIDER_URL || 'http://127.0.0.1:8095';
const API_KEY = __ENV.API_KEY || 'sk_d3e0d3e0d3e0d3e0d3e0d3e0d3e0d3e0d3e0d3e0';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const RATE = parseInt(__ENV.RATE || '100', 10);
const DURATION = __ENV.DURATION || '20s';
const COPIES = parseInt(__ENV.COPIES || '5', 10);
const VUS = parseInt(__ENV.VUS || '16', 10);
const NO_IDEMPOTENCY = __ENV.NO_IDEMPOTENCY === '1';
// Keys made by this VU so far (each VU has its own copy of this module).
let made = 0;

const serverErrors = new Counter('server_errors');
const keysUsed = new Counter('keys_used');
const duplicatePayments = new Counter('duplicate_payments');
const duplicateCharges = new Counter('duplicate_charges');
// 4xx answers are part of what the scenarios check, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const scenarios = {
  smoke: { smoke: { executor: 'constant-vus', vus: 2, duration: '10s', exec: 'smoke' } },
  load: {
    load: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 50,
      maxVUs: 200,
      exec: 'unique',
    },
  },
  storm: { storm: { executor: 'constant-vus', vus: 8, duration: DURATION, exec: 'storm' } },
  bench: { bench: { executor: 'constant-vus', vus: VUS, duration: DURATION, exec: 'unique' } },
};

export const options = {
  scenarios: scenarios[SCENARIO],
  setupTimeout: '60s',
  teardownTimeout: '120s',
  thresholds: {
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    duplicate_payments: ['count==0'],
    duplicate_charges: ['count==0'],
    // Named so that the summary (and bench-idempotency.sh) has the payments' own latency.
    'http_req_duration{name:payment}': ['p(99)<10000'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

function headers(key) {
  const h = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };
  if (key !== undefined) h['idempotency-key'] = key;
  return { headers: h };
}

// The run's id (from setup) opens every key and description, so that the final count looks at
// this run's payments only.
function payment(run, key, amount, source) {
  return JSON.stringify({ amount, currency: 'usd', source: source || 'tok_visa', description: `${run}:${key}` });
}

function pay(key, body, name) {
  const response = http.post(`${BASE}/v1/payments`, body, { ...headers(NO_IDEMPOTENCY ? undefined : key), tags: { name } });
  if (response.status >= 500) serverErrors.add(1);
  return response;
}

function newKey(run) {
  keysUsed.add(1);
  made += 1;
  return `${run}-${exec.vu.idInTest}-${made}`;
}

export function setup() {
  const response = http.get(`${BASE}/v1/payments?limit=1`, headers());
  if (response.status !== 200) {
    fail(`the API key is not accepted (${response.status}): start the service with PAYMENTS_DEMO_KEY=${API_KEY}`);
  }
  return {
    run: `k6-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`,
    made: providerCharges().made,
  };
}

// The provider's listing: {"made", "replayed", "charges": [...]}, where `charges` holds only the
// newest (the provider's retention window) and `made` counts every charge it ever made.
function providerCharges() {
  const response = http.get(`${PROVIDER}/v1/charges`);
  if (response.status !== 200) fail(`listing the provider's charges: ${response.status}`);
  return response.json();
}

// Every rule of the contract, once per iteration.
export function smoke({ run }) {
  const key = newKey(run);
  const body = payment(run, key, 2000);
  const first = pay(key, body, 'first');
  const replay = pay(key, body, 'replay');
  const mismatch = pay(key, payment(run, key, 2001), 'mismatch');
  const missing = http.post(`${BASE}/v1/payments`, body, headers());
  check(first, { 'first is 201': (r) => r.status === 201 && !r.headers['Idempotent-Replayed'] });
  check(replay, {
    'replay is the same bytes': (r) => r.status === 201 && r.body === first.body,
    'replay is marked': (r) => r.headers['Idempotent-Replayed'] === 'true',
  });
  check(mismatch, { 'another body is 422': (r) => r.status === 422 });
  check(missing, { 'no key is 400': (r) => r.status === 400 });
  const read = http.get(`${BASE}/v1/payments/${first.json('id')}`, headers());
  check(read, { 'the payment reads back': (r) => r.status === 200 && r.json('id') === first.json('id') });

  const declineKey = newKey(run);
  const declineBody = payment(run, declineKey, 500, 'tok_chargeDeclined');
  const declined = pay(declineKey, declineBody, 'decline');
  const declinedAgain = pay(declineKey, declineBody, 'decline replay');
  check(declined, { 'a decline is 402': (r) => r.status === 402 });
  check(declinedAgain, { 'a decline replays': (r) => r.status === 402 && r.body === declined.body });
}

// One payment per iteration, each with its own key.
export function unique({ run }) {
  const key = newKey(run);
  const response = pay(key, payment(run, key, 1000 + (exec.scenario.iterationInTest % 1000)), 'payment');
  check(response, { 'paid': (r) => r.status === 201 });
}

// Each payment sent COPIES times at once, then once more after: one charge, and the late retry
// is a replay of the one that did the work.
export function storm({ run }) {
  const key = newKey(run);
  const body = payment(run, key, 3000);
  const copies = [];
  for (let i = 0; i < COPIES; i++) {
    copies.push(['POST', `${BASE}/v1/payments`, body, { ...headers(key), tags: { name: 'storm copy' } }]);
  }
  const responses = http.batch(copies);
  for (const r of responses) if (r.status >= 500) serverErrors.add(1);
  check(responses, { 'every copy is 201 or 409': (rs) => rs.every((r) => r.status === 201 || r.status === 409) });
  const late = pay(key, body, 'storm retry');
  const done = responses.find((r) => r.status === 201);
  check(late, { 'the late retry replays': (r) => r.status === 201 && (!done || r.body === done.body) });
}

// Per key of this run: exactly one payment, and exactly one charge per payment.
export function teardown({ run, made: madeAtSetup }) {
  if (NO_IDEMPOTENCY) return;
  const paymentsByKey = {};
  // Newest first: this run's payments come first, and the first older one ends the listing.
  let cursor = '';
  let older = false;
  while (!older) {
    const page = http.get(`${BASE}/v1/payments?limit=100${cursor ? `&cursor=${cursor}` : ''}`, headers());
    if (page.status !== 200) fail(`listing payments: ${page.status}`);
    for (const p of page.json('data')) {
      if (!p.description || !p.description.startsWith(`${run}:`)) {
        older = true;
        break;
      }
      const key = p.description.slice(run.length + 1);
      (paymentsByKey[key] = paymentsByKey[key] || []).push(p.id);
    }
    cursor = page.json('next_cursor');
    if (!cursor) break;
  }
  // A long run's first charges may have left the provider's listing, so a payment missing from it
  // proves nothing: a payment listed twice is a double charge, and the charges made since setup
  // must be this run's payments, one each. What the listing already showed is not counted twice.
  const listing = providerCharges();
  const chargesByPayment = {};
  for (const c of listing.charges) chargesByPayment[c.idempotency_key] = (chargesByPayment[c.idempotency_key] || 0) + 1;
  let keys = 0;
  let payments = 0;
  let listedTwice = 0;
  for (const key of Object.keys(paymentsByKey)) {
    keys += 1;
    payments += paymentsByKey[key].length;
    if (paymentsByKey[key].length !== 1) duplicatePayments.add(paymentsByKey[key].length - 1);
    for (const id of paymentsByKey[key]) listedTwice += Math.max(0, (chargesByPayment[id] || 0) - 1);
  }
  const made = listing.made - madeAtSetup;
  duplicateCharges.add(listedTwice + Math.abs(made - payments - listedTwice));
  console.log(`${keys} keys of this run have payments; each was checked for one payment, and the provider made ${made} charges for their ${payments} payments`);
}
