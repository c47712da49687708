// k6 load test for the feed service (see loadtests/README.md).
//
//   k6 run loadtests/feed-service.js                                      # smoke: ~10 s, every route, users of its own
//   k6 run -e SCENARIO=mix -e SEED_FILE=data/feed-seed.json loadtests/feed-service.js        # 50 reads a write
//   k6 run -e SCENARIO=celebrity -e SEED_FILE=data/feed-seed.json loadtests/feed-service.js  # the top celebrity posts
//   k6 run -e SCENARIO=reads -e SEED_FILE=data/feed-seed.json loadtests/feed-service.js      # reads only, at RATE/s
//   k6 run -e SCENARIO=posts -e SEED_FILE=data/feed-seed.json loadtests/feed-service.js      # posts only, closed loop
//   k6 run -e SCENARIO=load loadtests/feed-service.js                     # RATE requests/s, 1 in 50 a post, on a small graph
//
// The load scenarios run on a graph made by the seed tool (feed-service/src/bin/feed-seed/),
// acting as the users its manifest (SEED_FILE) lists with their tokens: its sample reads and
// posts, its top user (followed by every other) posts in the celebrity scenario. The load
// scenario (the console's) takes the manifest too, but without one its setup makes a small graph
// of its own in a second or two, so that a short run starts at once.
//
// Environment: BASE_URL (default http://127.0.0.1:8084), SEED_FILE (the manifest; the smoke
// reads some seeded feeds too when it is given), RATE (feed reads a second, default 500; the mix
// adds RATE/50 posts a second), DURATION (default 30s), LIMIT (posts a page, default 20), WARM
// (reads of each sampled feed before the load scenarios start, so they measure cached timelines:
// default 1), CELEBRITY_EVERY (seconds between the celebrity's posts, default 5), READERS
// (followers polled for each celebrity post, default 20) and SETTLE (how long a post may take to
// reach them, default 60s), POST_VUS (the posts scenario's concurrent posters, default 8) and
// POST_RATE (posts a second instead, at a fixed rate; the posts scenario is then open loop).
// USERS (the load scenario without SEED_FILE: the users its setup makes, each following the next
// FOLLOWS, default 10, and with POSTS_EACH posts, default 2; default 50).
// RATE=0 leaves the reads out of the celebrity scenario.
//
// Every threshold is about correctness: statuses, the shape and order of every page, and in the
// celebrity scenario that each post reaches every follower polled for it (`unseen_posts`).
// Timings are reported, never judged here; loadtests/bench-feed.sh compares them.

import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8084';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const SEED_FILE = __ENV.SEED_FILE || '';
const RATE = parseInt(__ENV.RATE || '500', 10);
const DURATION = __ENV.DURATION || '30s';
const LIMIT = parseInt(__ENV.LIMIT || '20', 10);
const WARM = parseInt(__ENV.WARM || '1', 10);
const CELEBRITY_EVERY = parseInt(__ENV.CELEBRITY_EVERY || '5', 10);
const READERS = parseInt(__ENV.READERS || '20', 10);
const SETTLE_SECONDS = seconds(__ENV.SETTLE || '60s');
const POST_VUS = parseInt(__ENV.POST_VUS || '8', 10);
const POST_RATE = parseInt(__ENV.POST_RATE || '0', 10);
const USERS = parseInt(__ENV.USERS || '50', 10);
const FOLLOWS = parseInt(__ENV.FOLLOWS || '10', 10);
const POSTS_EACH = parseInt(__ENV.POSTS_EACH || '2', 10);
// One request of the load scenario in this many is a post, as in the mix.
const READS_PER_POST = 50;
// How long the smoke waits for fan-out (push, hybrid) to bring a post into a follower's feed.
const FANOUT_SMOKE_SECONDS = 15;

// The manifest, read once in the init context (open() works nowhere else).
const SEED = SEED_FILE ? JSON.parse(open(SEED_FILE)) : null;
if (SCENARIO !== 'smoke' && SCENARIO !== 'load' && !SEED) {
  throw new Error(`SCENARIO=${SCENARIO} needs SEED_FILE, the seed tool's manifest`);
}

const serverErrors = new Counter('server_errors');
const unseenPosts = new Counter('unseen_posts');
const visible = new Trend('celebrity_post_visible_ms', true);
// The reads of the load scenarios alone (http_req_duration also holds the warm-up and the polls).
const feedReads = new Trend('feed_read_ms', true);
// 4xx answers are part of what the smoke checks, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const reads = (rate) => ({
  executor: 'constant-arrival-rate',
  rate,
  timeUnit: '1s',
  duration: DURATION,
  preAllocatedVUs: Math.max(10, Math.ceil(rate / 20)),
  maxVUs: Math.max(50, rate),
  exec: 'read',
});

const scenarios = {
  smoke: { smoke: { executor: 'constant-vus', vus: 2, duration: '10s', gracefulStop: `${FANOUT_SMOKE_SECONDS + 15}s`, exec: 'smoke' } },
  reads: { reads: reads(RATE) },
  mix: {
    reads: reads(RATE),
    writes: { ...reads(Math.max(1, Math.round(RATE / 50))), preAllocatedVUs: 5, maxVUs: 50, exec: 'write' },
  },
  // RATE requests a second in all, so that the rate asked for is the rate sent: the mix's reads
  // and posts in one open-loop scenario.
  load: { load: { ...reads(RATE), exec: 'readOrPost' } },
  posts: {
    posts: POST_RATE > 0
      ? { ...reads(POST_RATE), exec: 'write' }
      : { executor: 'constant-vus', vus: POST_VUS, duration: DURATION, exec: 'write' },
  },
  celebrity: {
    ...(RATE > 0 ? { reads: reads(RATE) } : {}),
    celebrity: {
      executor: 'constant-arrival-rate',
      rate: 1,
      timeUnit: `${CELEBRITY_EVERY}s`,
      duration: DURATION,
      preAllocatedVUs: 2,
      maxVUs: 20,
      gracefulStop: `${SETTLE_SECONDS + 10}s`,
      exec: 'celebrity',
    },
  },
};

export const options = {
  scenarios: scenarios[SCENARIO],
  setupTimeout: '600s',
  thresholds: {
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    unseen_posts: ['count==0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// "20s", "1m30s", "2h" → seconds.
function seconds(text) {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(h|m|s)/g)) total += parseInt(n, 10) * { h: 3600, m: 60, s: 1 }[unit];
  return total;
}

function request(method, path, { token, body, name } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = http.request(method, `${BASE}${path}`, body === undefined ? null : JSON.stringify(body), { headers, tags: { name: name || path } });
  if (response.status >= 500) serverErrors.add(1);
  return response;
}

const ID = /^[1-9][0-9]{0,15}$/;
// Ids are strings of digits without leading zeros: the longer is the greater, then by text.
function greater(a, b) {
  return a.length !== b.length ? a.length > b.length : a > b;
}

// A post as the API documents it.
function isPost(post) {
  return post !== null && typeof post === 'object' && ID.test(post.id) && ID.test(post.author)
    && typeof post.author_handle === 'string' && typeof post.text === 'string'
    && typeof post.created_at === 'string' && !Number.isNaN(Date.parse(post.created_at));
}

// A page of a feed: 200, at most `limit` well-formed posts, newest first, a cursor or null.
function isPage(response, limit) {
  if (response.status !== 200) return false;
  const body = response.json();
  return Array.isArray(body.data) && body.data.length <= limit && body.data.every(isPost)
    && body.data.every((post, i) => i === 0 || greater(body.data[i - 1].id, post.id))
    && (body.next_cursor === null || typeof body.next_cursor === 'string');
}

function feed(user, query = '', name = 'feed') {
  return request('GET', `/v1/users/${user.id}/feed${query}`, { token: user.token, name });
}

function ids(response) {
  return response.status === 200 ? response.json('data').map((post) => post.id) : [];
}

function problemNames(response, status, member) {
  if (response.status !== status || !String(response.headers['Content-Type']).startsWith('application/problem+json')) return false;
  const errors = response.json('errors') || [];
  return errors.length > 0 && (errors[0].pointer === `#/${member}` || errors[0].parameter === member);
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export function setup() {
  if (http.get(`${BASE}/healthz`).status !== 200) fail(`the feed service does not answer at ${BASE}`);
  const run = `k${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  if (!SEED && SCENARIO !== 'load') return { run };
  if (SEED && (SEED.sample.length === 0 || !SEED.top)) fail(`${SEED_FILE} lists no sampled users or no top user`);
  const graph = SEED ? null : makeGraph(run);
  const sample = SEED ? SEED.sample : graph;
  // Every sampled user's timeline built (or, under pull, the pages read once) before the clock
  // starts: the load then reads cached timelines, as the benchmark asks.
  if (SCENARIO !== 'smoke' && SCENARIO !== 'posts') {
    for (let round = 0; round < WARM; round++) {
      for (let i = 0; i < sample.length; i += 50) {
        const batch = sample.slice(i, i + 50).map((user) => ['GET', `${BASE}/v1/users/${user.id}/feed?limit=${LIMIT}`, null, { headers: { authorization: `Bearer ${user.token}` }, tags: { name: 'warm' } }]);
        for (const response of http.batch(batch)) {
          if (response.status !== 200) fail(`warming a seeded feed: ${response.status} ${response.body}`);
        }
      }
    }
  }
  return graph ? { run, graph } : { run };
}

// Sends `requests` (http.batch's arrays) 50 at a time; fails the run unless each answers `status`.
function inBatches(requests, status, what) {
  const responses = [];
  for (let i = 0; i < requests.length; i += 50) {
    for (const response of http.batch(requests.slice(i, i + 50))) {
      if (response.status !== status) fail(`${what}: ${response.status} ${response.body}`);
      responses.push(response);
    }
  }
  return responses;
}

// The load scenario's graph without a seed: USERS users of this run, each following the next
// FOLLOWS of them in a ring (so every one has followers and a feed of others' posts), each with
// POSTS_EACH posts. Returns them with their tokens, as the manifest lists its sample.
function makeGraph(run) {
  const json = (token) => ({ headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const users = inBatches(
    Array.from({ length: USERS }, (_, i) => ['POST', `${BASE}/v1/users`, JSON.stringify({ handle: `${run}_${i}` }), { ...json(), tags: { name: 'sign up' } }]),
    201,
    'signing up the graph\'s users',
  ).map((r) => ({ id: r.json('id'), token: r.json('token') }));
  const follows = [];
  users.forEach((user, i) => {
    for (let k = 1; k <= Math.min(FOLLOWS, users.length - 1); k++) {
      follows.push(['PUT', `${BASE}/v1/users/${user.id}/following/${users[(i + k) % users.length].id}`, null, { ...json(user.token), tags: { name: 'follow' } }]);
    }
  });
  inBatches(follows, 204, 'following within the graph');
  const posts = [];
  for (let p = 0; p < POSTS_EACH; p++) {
    for (const user of users) posts.push(['POST', `${BASE}/v1/posts`, JSON.stringify({ text: `${run} post ${p} by ${user.id}` }), { ...json(user.token), tags: { name: 'post' } }]);
  }
  inBatches(posts, 201, 'posting within the graph');
  return users;
}

function signUp(handle) {
  const response = request('POST', '/v1/users', { body: { handle }, name: 'sign up' });
  check(response, { 'a sign-up is 201 with a string id and a token': (r) => r.status === 201 && ID.test(r.json('id')) && /^sk_[0-9a-f]{40}$/.test(r.json('token')) });
  return response.status === 201 ? { id: response.json('id'), token: response.json('token') } : null;
}

function publish(author, text, name = 'post') {
  return request('POST', '/v1/posts', { token: author.token, body: { text }, name });
}

// Three users of its own per iteration: follows, posts, every page rule, the refusals, a delete;
// then, with SEED_FILE, a seeded user's feed page by page.
export function smoke({ run }) {
  const tag = `${run}_${exec.vu.idInTest}_${exec.vu.iterationInScenario}`;
  const [ada, grace, alan] = ['a', 'g', 'l'].map((who) => signUp(`${tag}${who}`));
  if (!ada || !grace || !alan) return;

  const follow = request('PUT', `/v1/users/${ada.id}/following/${grace.id}`, { token: ada.token, name: 'follow' });
  check(follow, { 'a follow is 204': (r) => r.status === 204 });
  check(request('PUT', `/v1/users/${grace.id}/following/${alan.id}`, { token: ada.token, name: 'follow' }), {
    'following for someone else is 403': (r) => r.status === 403,
  });
  check(request('PUT', `/v1/users/${ada.id}/following/9007199254740991`, { token: ada.token, name: 'follow' }), {
    'following no one is 404': (r) => r.status === 404,
  });

  const posted = [];
  for (let i = 0; i < 3; i++) {
    const response = publish(grace, `post ${i} of ${tag}`);
    check(response, { 'a post is 201 with its author': (r) => r.status === 201 && isPost(r.json()) && r.json('author') === grace.id });
    if (response.status === 201) posted.push(response.json('id'));
  }
  check(publish(grace, 'x'.repeat(281)), { 'a post over 280 characters is 422 naming text': (r) => problemNames(r, 422, 'text') });
  check(request('POST', '/v1/posts', { token: grace.token, body: { text: 'as ada', author: ada.id }, name: 'post' }), {
    'posting as someone else is 403': (r) => r.status === 403,
  });
  const mine = publish(ada, `ada's own, ${tag}`);
  if (mine.status === 201) posted.push(mine.json('id'));

  // Under push and hybrid the posts reach ada's timeline after fan-out; pull has them at once.
  const deadline = Date.now() + FANOUT_SMOKE_SECONDS * 1000;
  let first;
  for (;;) {
    first = feed(ada, '?limit=2');
    const all = ids(feed(ada, '?limit=100'));
    if (posted.every((id) => all.includes(id)) || Date.now() >= deadline) break;
    sleep(0.1);
  }
  check(first, { 'a feed page is 200, newest first, at most limit posts': (r) => isPage(r, 2) && r.json('data').length === 2 });
  const everything = ids(feed(ada, '?limit=100'));
  check(everything, { 'the feed holds your own posts and those you follow, newest first': (all) => posted.every((id) => all.includes(id)) && all[0] === [...posted].sort((a, b) => (greater(a, b) ? -1 : 1))[0] });
  const cursor = first.status === 200 ? first.json('next_cursor') : null;
  check(cursor, { 'a full page has a cursor': (c) => typeof c === 'string' });
  if (cursor) {
    const next = feed(ada, `?limit=2&cursor=${cursor}`);
    check(next, {
      'the next page starts below the cursor, without repeats': (r) => isPage(r, 2) && ids(r).every((id) => !ids(first).includes(id) && greater(ids(first)[1], id)),
    });
  }
  check(feed(ada, '?limit=0'), { 'limit 0 is 400 naming limit': (r) => problemNames(r, 400, 'limit') });
  check(feed(ada, '?limit=101'), { 'limit 101 is 400 naming limit': (r) => problemNames(r, 400, 'limit') });
  check(feed(ada, '?cursor=not-a-cursor'), { 'a bad cursor is 400 naming cursor': (r) => problemNames(r, 400, 'cursor') });
  check(feed({ id: grace.id, token: ada.token }), { "another user's feed is 403": (r) => r.status === 403 });
  check(feed({ id: '9007199254740991', token: ada.token }), { "an unknown user's feed is 404": (r) => r.status === 404 });
  check(feed({ id: ada.id, token: `sk_${'0'.repeat(40)}` }), { 'an unknown token is 401': (r) => r.status === 401 });

  if (posted.length > 0) {
    const gone = posted[0];
    check(request('DELETE', `/v1/posts/${gone}`, { token: ada.token, name: 'delete' }), { "deleting another's post is 403": (r) => r.status === 403 });
    check(request('DELETE', `/v1/posts/${gone}`, { token: grace.token, name: 'delete' }), { 'deleting your post is 204': (r) => r.status === 204 });
    check(feed(ada, '?limit=100'), { 'a deleted post leaves the feed at once': (r) => isPage(r, 100) && !ids(r).includes(gone) });
    check(request('GET', `/v1/posts/${gone}`, { token: ada.token, name: 'get post' }), { 'a deleted post is 404': (r) => r.status === 404 });
  }

  if (SEED) {
    const reader = pick(SEED.sample);
    const page = feed(reader, `?limit=${LIMIT}`, 'seeded feed');
    check(page, { 'a seeded user reads their feed with their token': (r) => isPage(r, LIMIT) && r.json('data').length > 0 });
    const next = page.status === 200 ? page.json('next_cursor') : null;
    if (next) check(feed(reader, `?limit=${LIMIT}&cursor=${next}`, 'seeded feed'), { 'and its next page': (r) => isPage(r, LIMIT) });
  }
}

// One read of a sampled user's first page (a user of the graph setup made, if it made one).
export function read({ graph }) {
  const response = feed(pick(graph || SEED.sample), `?limit=${LIMIT}`);
  feedReads.add(response.timings.duration);
  check(response, { 'a feed page is 200, well-formed, newest first': (r) => isPage(r, LIMIT) });
}

// The sampled users who are not celebrities: the authors of ordinary posts.
const AUTHORS = SEED ? SEED.sample.filter((user) => user.followers <= SEED.celebrity_threshold) : [];

// One post by a sampled user who is not a celebrity (or by a user of the graph setup made).
export function write({ run, graph }) {
  const response = publish(pick(graph || AUTHORS), `${run} post ${exec.scenario.iterationInTest}`);
  check(response, { 'a post is 201': (r) => r.status === 201 && isPost(r.json()) });
}

// The load scenario's request: every READS_PER_POST-th a post, the others reads.
export function readOrPost(data) {
  if (exec.scenario.iterationInTest % READS_PER_POST === READS_PER_POST - 1) write(data);
  else read(data);
}

// The top user (followed by every other, a celebrity in any graph big enough) posts; READERS sampled users poll their first page,
// all at once (http.batch) every 50 ms, until it is there. The time from the post's answer to the
// round in which each reader sees it is `celebrity_post_visible_ms`; a reader who has not within
// SETTLE counts in `unseen_posts`.
export function celebrity({ run }) {
  const star = SEED.top;
  const response = publish(star, `${run} celebrity post ${exec.scenario.iterationInTest}`, 'celebrity post');
  check(response, { 'a celebrity post is 201': (r) => r.status === 201 });
  if (response.status !== 201) return;
  const post = response.json('id');
  const posted = Date.now();
  const deadline = posted + SETTLE_SECONDS * 1000;
  let waiting = [];
  for (let i = 0; i < READERS; i++) waiting.push(SEED.sample[(exec.scenario.iterationInTest * READERS + i) % SEED.sample.length]);
  while (waiting.length > 0 && Date.now() < deadline) {
    const pages = http.batch(waiting.map((reader) => ['GET', `${BASE}/v1/users/${reader.id}/feed?limit=${LIMIT}`, null, { headers: { authorization: `Bearer ${reader.token}` }, tags: { name: 'celebrity poll' } }]));
    const now = Date.now();
    waiting = waiting.filter((reader, i) => {
      if (pages[i].status >= 500) serverErrors.add(1);
      check(pages[i], { 'a feed page is 200, well-formed, newest first': (r) => isPage(r, LIMIT) });
      if (!ids(pages[i]).includes(post)) return true;
      visible.add(now - posted);
      return false;
    });
    if (waiting.length > 0) sleep(0.05);
  }
  unseenPosts.add(waiting.length);
}
