// k6 load test for the rate limiter (see loadtests/README.md).
//
//   k6 run loadtests/rate-limiter.js                    # smoke: the decision API and the gateway, once
//   k6 run -e SCENARIO=load loadtests/rate-limiter.js   # decisions at a fixed rate over many keys
//   k6 run -e SCENARIO=gateway loadtests/rate-limiter.js   # requests through the gateway
//
// Environment: BASE_URL (the decision API, default http://127.0.0.1:8082), API_KEY (a caller's
// key: start the limiter with RATE_LIMITER_CALLER_KEY set to the same value), GATEWAY_URL (the
// gateway, default http://127.0.0.1:8092; the smoke skips it when it does not answer), RATE
// (requests/s, default 3000), DURATION (default 30s), KEYS (distinct clients, default 10000).
// The smoke scenario fails on any unexpected answer; the load scenarios on any 5xx or a p99
// over 25 ms.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8082';
const API_KEY = __ENV.API_KEY || 'sk_b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const GATEWAY = __ENV.GATEWAY_URL || 'http://127.0.0.1:8092';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const RATE = parseInt(__ENV.RATE || '3000', 10);
const DURATION = __ENV.DURATION || '30s';
const KEYS = parseInt(__ENV.KEYS || '10000', 10);

const serverErrors = new Counter('server_errors');
const JSON_HEADERS = { headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` } };
// 429 and 422 are answers the scenarios expect, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const arrival = (exec) => ({
  executor: 'constant-arrival-rate',
  rate: RATE,
  timeUnit: '1s',
  duration: DURATION,
  preAllocatedVUs: 50,
  maxVUs: 200,
  exec,
});

export const options = {
  scenarios: {
    smoke: { smoke: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'smoke' } },
    load: { decisions: arrival('decide') },
    gateway: { gateway: arrival('throughGateway') },
  }[SCENARIO],
  thresholds: {
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    // A latency target is the load scenarios': the smoke runs debug builds on a shared CI machine,
    // where a timed assertion would fail on the machine's load rather than on the code.
    ...(SCENARIO === 'smoke' ? {} : { http_req_duration: ['p(99)<25'] }),
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

function ask(rule, key, cost) {
  const body = { rule, key };
  if (cost !== undefined) body.cost = cost;
  const response = http.post(`${BASE}/api/v1/check`, JSON.stringify(body), JSON_HEADERS);
  if (response.status >= 500) serverErrors.add(1);
  return response;
}

export function smoke() {
  const rules = http.get(`${BASE}/api/v1/rules`, JSON_HEADERS);
  if (rules.status === 401) fail(`the API key is not accepted: start the limiter with RATE_LIMITER_CALLER_KEY=${API_KEY}`);
  check(rules, { 'rules are listed': (r) => r.status === 200 && r.json().length > 0 });
  check(http.post(`${BASE}/api/v1/check`, JSON.stringify({ rule: 'per-user', key: 'k6' }), { headers: { 'content-type': 'application/json' } }), {
    'a check without a key is refused': (r) => r.status === 401,
  });
  check(ask('gateway-ip', 'ip:127.0.0.2', 39), {
    "the gateway's rules are not the API's": (r) => r.status === 422,
  });

  const key = `k6:${Date.now()}:${Math.random()}`;
  const first = ask('per-user', key);
  check(first, {
    'a first request is allowed': (r) => r.status === 200 && r.json('allowed') === true,
    'with RateLimit-Policy': (r) => r.headers['Ratelimit-Policy'] === '"per-user";q=20;w=2',
    'and RateLimit': (r) => /^"per-user";r=19;t=\d+$/.test(r.headers['Ratelimit']),
  });
  ask('per-user', key, 19);
  const rejected = ask('per-user', key);
  check(rejected, {
    'the request after the burst is 429': (r) => r.status === 429 && r.json('allowed') === false,
    'with Retry-After in whole seconds': (r) => parseInt(r.headers['Retry-After'], 10) >= 1,
    'and nothing remaining': (r) => r.json('remaining') === 0,
  });
  check(ask('no-such-rule', key), {
    'an unknown rule is 422 naming the field': (r) =>
      r.status === 422 && r.json('errors.0.pointer') === '#/rule',
  });
  check(ask('per-user', key, 21), {
    'a cost beyond capacity is 422': (r) => r.status === 422 && r.json('errors.0.pointer') === '#/cost',
  });

  const probe = http.get(`${GATEWAY}/healthz`, { timeout: '2s' });
  if (probe.error_code !== 0 && probe.status === 0) {
    console.log(`no gateway at ${GATEWAY}; skipping its checks`);
    return;
  }
  check(probe, {
    'the gateway forwards and reports the limit': (r) =>
      r.status === 200 && /"gateway-ip";r=\d+/.test(r.headers['Ratelimit'] || ''),
  });
  // The gateway-ip rule admits a burst of 40 from one address: the 41st request is refused.
  const statuses = [];
  for (let i = 0; i < 45; i++) statuses.push(http.get(`${GATEWAY}/healthz`));
  const refused = statuses.find((r) => r.status === 429);
  check(refused, {
    'the gateway refuses the burst beyond the limit': (r) => r !== undefined,
    'with a problem body and Retry-After': (r) =>
      r !== undefined && r.headers['Content-Type'] === 'application/problem+json' &&
      parseInt(r.headers['Retry-After'], 10) >= 1,
  });
}

export function decide() {
  const response = ask('per-user', `client:${Math.floor(Math.random() * KEYS)}`);
  check(response, { 'decided': (r) => r.status === 200 || r.status === 429 });
}

export function throughGateway() {
  const response = http.get(`${GATEWAY}/healthz`);
  if (response.status >= 500) serverErrors.add(1);
  check(response, { 'forwarded or limited': (r) => r.status === 200 || r.status === 429 });
}
