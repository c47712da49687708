// k6 load test for the URL shortener (see loadtests/README.md).
//
//   k6 run loadtests/url-shortener.js                    # smoke: ~10 s, every route once per iteration
//   k6 run -e SCENARIO=load loadtests/url-shortener.js   # creates, then a redirect-heavy mix
//
// Environment: BASE_URL (default http://127.0.0.1:8081), and for the load scenario LINKS (links
// created before the mix, default 2000), RATE (requests/s of the mix, default 3000), DURATION
// (default 60s). The smoke scenario fails on any unexpected status; the load scenario fails when
// redirects miss their latency threshold or anything answers 5xx.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8081';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const LINKS = parseInt(__ENV.LINKS || '2000', 10);
const RATE = parseInt(__ENV.RATE || '3000', 10);
const DURATION = __ENV.DURATION || '60s';
// The hot set: this share of redirects goes to this share of the links (a power law, roughly).
const HOT_SHARE_OF_TRAFFIC = 0.9;
const HOT_SHARE_OF_LINKS = 0.1;

const serverErrors = new Counter('server_errors');
const JSON_HEADERS = { 'content-type': 'application/json' };
// 4xx answers are part of what the smoke scenario checks, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const scenarios = {
  smoke: {
    smoke: { executor: 'constant-vus', vus: 2, duration: '10s', exec: 'smoke' },
  },
  load: {
    mix: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 100,
      maxVUs: 400,
      exec: 'mix',
    },
  },
};

export const options = {
  scenarios: scenarios[SCENARIO],
  discardResponseBodies: false,
  thresholds: {
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    // A latency target is the load scenario's: the smoke runs debug builds on a shared CI machine,
    // where a timed assertion would fail on the machine's load rather than on the code.
    ...(SCENARIO === 'smoke' ? {} : { 'http_req_duration{name:redirect}': ['p(99)<50'] }),
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

function auth(key) {
  return { headers: { ...JSON_HEADERS, authorization: `Bearer ${key}` } };
}

function record5xx(response) {
  if (response.status >= 500) serverErrors.add(1);
  return response;
}

export function setup() {
  const keyResponse = http.post(`${BASE}/api/v1/keys`, JSON.stringify({ name: 'k6' }), {
    headers: JSON_HEADERS,
  });
  if (keyResponse.status !== 201) fail(`cannot create an API key: ${keyResponse.status} ${keyResponse.body}`);
  const key = keyResponse.json('key');
  const codes = [];
  const count = SCENARIO === 'load' ? LINKS : 0;
  for (let i = 0; i < count; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(i + 50, count); j++) {
      batch.push(['POST', `${BASE}/api/v1/links`, JSON.stringify({ url: `https://example.com/page/${j}` }), auth(key)]);
    }
    for (const response of http.batch(batch)) {
      if (response.status !== 201) fail(`create failed: ${response.status} ${response.body}`);
      codes.push(response.json('code'));
    }
  }
  // Warm the cache for the hot set, as real traffic would have.
  const hot = codes.slice(0, Math.max(1, Math.floor(codes.length * HOT_SHARE_OF_LINKS)));
  for (const code of hot) http.get(`${BASE}/${code}`, { redirects: 0 });
  return { key, codes };
}

// Every route once, with the status each must answer.
export function smoke(data) {
  const created = record5xx(
    http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: 'https://example.com/smoke', max_visits: 5 }), auth(data.key)),
  );
  check(created, { 'create: 201': (r) => r.status === 201 });
  if (created.status !== 201) return;
  const code = created.json('code');

  const follow = record5xx(http.get(`${BASE}/${code}`, { redirects: 0, tags: { name: 'redirect' } }));
  check(follow, {
    'redirect: 302': (r) => r.status === 302,
    'redirect: location': (r) => r.headers.Location === 'https://example.com/smoke',
  });
  check(record5xx(http.head(`${BASE}/${code}`, { redirects: 0 })), { 'head: 302': (r) => r.status === 302 });
  check(record5xx(http.get(`${BASE}/api/v1/links/${code}`, auth(data.key))), {
    'stats: 200': (r) => r.status === 200,
    'stats: one visit': (r) => r.json('visits') === 1,
  });
  check(record5xx(http.get(`${BASE}/zzzzzzz`, { redirects: 0 })), { 'unknown: 404': (r) => r.status === 404 });
  check(
    record5xx(http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: 'javascript:alert(1)' }), auth(data.key))),
    { 'invalid url: 422': (r) => r.status === 422 && r.json('errors.0.pointer') === '#/url' },
  );
  check(record5xx(http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: 'https://example.com/' }))), {
    'no key: 401': (r) => r.status === 401,
  });
  check(record5xx(http.del(`${BASE}/api/v1/links/${code}`, null, auth(data.key))), {
    'delete: 204': (r) => r.status === 204,
  });
  check(record5xx(http.get(`${BASE}/${code}`, { redirects: 0 })), { 'deleted: 404': (r) => r.status === 404 });
  check(record5xx(http.get(`${BASE}/readyz`)), { 'readyz: 200': (r) => r.status === 200 });
}

function pickCode(codes) {
  const hotCount = Math.max(1, Math.floor(codes.length * HOT_SHARE_OF_LINKS));
  if (Math.random() < HOT_SHARE_OF_TRAFFIC) return codes[Math.floor(Math.random() * hotCount)];
  return codes[hotCount + Math.floor(Math.random() * (codes.length - hotCount))];
}

// The read-heavy mix: 95% redirects (90% of them to the hot 10% of links), 5% creates.
export function mix(data) {
  if (Math.random() < 0.05) {
    const response = record5xx(
      http.post(`${BASE}/api/v1/links`, JSON.stringify({ url: 'https://example.com/new' }), {
        ...auth(data.key),
        tags: { name: 'create' },
      }),
    );
    check(response, { 'create: 201': (r) => r.status === 201 });
    return;
  }
  const response = record5xx(
    http.get(`${BASE}/${pickCode(data.codes)}`, {
      redirects: 0,
      tags: { name: 'redirect' },
      headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0' },
    }),
  );
  check(response, { 'redirect: 302': (r) => r.status === 302 });
}
