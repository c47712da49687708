#!/usr/bin/env bash
# The feed service's strategy benchmark behind feed-service/DESIGN.md §11: pull, push and hybrid
# on one seeded graph, in one run, per backend set.
#
#   loadtests/bench-feed.sh                           # SQLite + in-process, then PostgreSQL + Redis (+ Kafka)
#   BACKENDS=embedded loadtests/bench-feed.sh         # one of them: embedded | server
#   STRATEGIES="push hybrid" loadtests/bench-feed.sh  # some of the strategies
#
# For each backend set and strategy:
#   1. the graph is seeded again with --reset and the same --seed and --at, so every strategy
#      starts from the same rows (and, on Redis, no cached timelines): USERS users (100,001: the
#      first has 100,000 followers), 20 follows and 10 posts each;
#   2. the service starts (release build, FEED_STRATEGY); PIN=1 puts it on core 0 and k6 on core
#      1, as the other benchmarks do, but k6 (unlike wrk or oha) needs more than a core at 1,000
#      requests a second with its checks, and its own scheduling then dominates the tail:
#      measured, a k6 p99 of 11.5 ms pinned and 6.8 ms unpinned against a server-side p99 under
#      1 ms. So both share both cores by default, and the server's own histogram is reported too;
#   3. ROUNDS rounds of: k6 SCENARIO=reads, RATE (1,000) first pages of LIMIT (20) a second for
#      READ_SECONDS, by the manifest's 1,000 sampled users, whose timelines k6 builds before the
#      clock starts (feed_read_ms p50/p99, and the bucket of the service's
#      http_request_duration_seconds that holds its p99), right after the same reads of the
#      ceiling (feed-service/examples/read_ceiling.rs: a bare handler answering every feed read
#      with the bytes of a page this service served, so its p99 is the tail k6 and the machine
#      add to any read, which the service's cannot beat), and the CPU the service (/proc) and
#      Redis (INFO cpu) spent per measured read; k6 SCENARIO=posts, POST_VUS posters in a closed loop
#      for POST_SECONDS (posts a second), then the fan-out drained, and the service's metrics
#      read before and after (/metrics: feed_posts_published_total, feed_fanout_inserts_total,
#      feed_fanout_events_total): fan-out writes per post; and the top celebrity posting once,
#      READERS followers polling their first page until they see it (k6 celebrity_post_visible_ms)
#      and the fan-out's writes and lag for that one post (feed_fanout_lag_seconds: created to
#      last insert, i.e. visible to every follower);
#   4. one run of ordinary posts at a fixed PACED_RATE (20 a second, the 1:50 of the reads) for
#      POST_SECONDS, for the time until a post is in all its followers' timelines when fan-out
#      keeps up (the lag histogram's mean, and the bucket that holds its p99).
# Prints every run's numbers as it goes and a Markdown table of the rounds' medians.
#
# The server set uses PostgreSQL at DATABASE_URL (default the local one CI uses), Redis at
# REDIS_URL (default 127.0.0.1:6379), and Kafka at KAFKA_BROKERS (default 127.0.0.1:9092) if a
# broker listens there or tansu can be started as .ci/run starts it; otherwise the embedded
# topics, said in the table. Run nothing else meanwhile: a compile in another terminal doubles
# the tails. Needs k6, python3, curl, taskset (PIN=1).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
USERS=${USERS:-100001}
RATE=${RATE:-1000}
LIMIT=${LIMIT:-20}
READ_SECONDS=${READ_SECONDS:-30}
POST_SECONDS=${POST_SECONDS:-10}
POST_VUS=${POST_VUS:-8}
PACED_RATE=${PACED_RATE:-$((RATE / 50))}
READERS=${READERS:-50}
PIN=${PIN:-0}
BACKENDS=${BACKENDS:-embedded server}
STRATEGIES=${STRATEGIES:-pull push hybrid}
PG_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${REDIS_URL:-redis://127.0.0.1:6379}
BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
ADDR=127.0.0.1:18400
CEILING_ADDR=127.0.0.1:18401
# Every strategy's graph is the same rows: the same seed at the same moment.
AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for tool in k6 python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || { echo "missing: taskset (or PIN=0)" >&2; exit 1; }
  SERVER_CORE=(taskset -c 0) LOAD_CORE=(taskset -c 1)
else
  SERVER_CORE=() LOAD_CORE=()
fi

cargo build --release -q --locked -p feed-service --bins --examples

work=$(mktemp -d)
SERVER="" CEILING="" TANSU_PID=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -n "$CEILING" ]; then kill "$CEILING" 2>/dev/null || true; wait "$CEILING" 2>/dev/null || true; fi
  if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Waits for a /healthz to answer, up to `tries` fifths of a second.
healthy() { # base-url tries
  for _ in $(seq 1 "$2"); do
    curl -sf "$1/healthz" >/dev/null && return 0
    sleep 0.2
  done
  return 1
}

listening() { # host:port
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

kafka() { # succeeds if a broker listens on $BROKERS, starting tansu if it can
  listening "$BROKERS" && return 0
  local tansu
  tansu=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  [ -x "$tansu" ] || return 1
  "$tansu" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 1 50); do listening "$BROKERS" && return 0; sleep 0.2; done
  return 1
}

# The environment of one backend set, for the seed and the service.
backend_env() { # set
  case $1 in
    embedded) echo "SDLAB_DATA_DIR=$work/data" ;;
    server)
      echo "SDLAB_DATA_DIR=$work/data DATABASE_URL=$PG_URL REDIS_URL=$REDIS"
      if [ "$KAFKA" = 1 ]; then echo "KAFKA_BROKERS=$BROKERS"; fi
      ;;
  esac
}

# CPU seconds a process has used (user and system), from /proc.
cpu_seconds() { # pid
  python3 -c '
import os, sys
fields = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
' "$1"
}

# CPU seconds Redis has used, from INFO (0 when the set has no Redis).
redis_cpu_seconds() {
  [ "$set" = server ] || { echo 0; return; }
  redis-cli -u "$REDIS" info cpu | python3 -c '
import sys
info = dict(line.strip().split(":", 1) for line in sys.stdin if ":" in line)
print(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
'
}

# The sum of a metric's series on /metrics whose labels contain `match` (a substring).
metric() { # name [match]
  curl -sf "http://$ADDR/metrics" | python3 -c '
import sys
name, match = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
total = 0.0
for line in sys.stdin:
    if line.startswith("#"):
        continue
    series, _, value = line.rpartition(" ")
    base = series.split("{", 1)[0]
    if base == name and match in series:
        total += float(value)
print(f"{total:.6f}")
' "$@"
}

# A histogram's buckets on /metrics, as "le count" lines, summed over the series whose labels
# contain `match`.
buckets() { # name [match]
  curl -sf "http://$ADDR/metrics" | python3 -c '
import re, sys
from collections import defaultdict
name, match = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
counts = defaultdict(float)
for line in sys.stdin:
    m = re.match(re.escape(name) + r"_bucket\{(.*)le=\"([^\"]+)\"\} (\S+)", line)
    if m and match in m.group(1):
        counts[m.group(2)] += float(m.group(3))
for le, n in sorted(counts.items(), key=lambda kv: float(kv[0])):
    print(le, n)
' "$@"
}

# The upper bound of the bucket that holds the p99 of what was recorded between two bucket
# files, in milliseconds; "inf" past the last bucket, "-" if nothing was.
p99_bucket() { # before-file after-file
  python3 - "$1" "$2" <<'PY'
import sys
read = lambda path: [(le, float(n)) for le, n in (line.split() for line in open(path))]
before = dict(read(sys.argv[1]))
delta = [(le, n - before.get(le, 0.0)) for le, n in read(sys.argv[2])]
total = delta[-1][1] if delta else 0
if total == 0:
    print("-")
else:
    le = next(le for le, n in delta if n >= 0.99 * total)
    print("inf" if le == "+Inf" else f"{float(le) * 1000:g}")
PY
}

# Waits until the fan-out has handled every post.created event for the posts published so far
# (push and hybrid; pull has no fan-out), at most 10 minutes.
drain() {
  [ "$strategy" = pull ] && return 0
  local published handled
  for _ in $(seq 1 3000); do
    published=$(metric feed_posts_published_total)
    handled=$(metric feed_fanout_events_total 'event="post.created"')
    python3 -c "import sys; sys.exit(0 if $handled >= $published else 1)" && return 0
    sleep 0.2
  done
  echo "the fan-out did not drain: $handled of $published events handled" >&2
  return 1
}

k6run() { # scenario, summary file, then extra k6 arguments; against TARGET (default the service)
  local scenario=$1 summary=$2
  shift 2
  "${LOAD_CORE[@]}" k6 run -q --no-color --summary-export "$summary" -e SCENARIO="$scenario" \
    -e BASE_URL="http://${TARGET:-$ADDR}" -e SEED_FILE="$work/data/feed-seed.json" -e LIMIT="$LIMIT" "$@" \
    loadtests/feed-service.js >"$work/k6.log" 2>&1 || { cat "$work/k6.log" >&2; echo "k6 $scenario failed its thresholds" >&2; return 1; }
}

# A field of a k6 summary export: metric, stat (med, p(99), count, rate, value).
summary() { # file metric stat
  python3 -c '
import json, sys
metrics = json.load(open(sys.argv[1]))["metrics"]
print(metrics.get(sys.argv[2], {}).get(sys.argv[3], 0))
' "$@"
}

start_service() { # set strategy
  # shellcheck disable=SC2046
  env -u DATABASE_URL -u REDIS_URL -u KAFKA_BROKERS $(backend_env "$1") RUST_LOG=warn \
    FEED_ADDR="$ADDR" FEED_STRATEGY="$2" "${SERVER_CORE[@]}" target/release/feed-service \
    >"$work/service.log" 2>&1 &
  SERVER=$!
  healthy "http://$ADDR" 150 && return 0
  cat "$work/service.log" >&2
  echo "the feed service did not start" >&2
  exit 1
}

stop_service() {
  kill "$SERVER" ${CEILING:+"$CEILING"}
  wait "$SERVER" ${CEILING:+"$CEILING"} 2>/dev/null || true
  SERVER="" CEILING=""
}

# The ceiling, answering every feed read with a first page the service just served to the first
# sampled user (so the same size and shape as the pages measured).
start_ceiling() {
  local user
  user=$(python3 -c '
import json, sys
user = json.load(open(sys.argv[1]))["sample"][0]
print(user["id"], user["token"])
' "$work/data/feed-seed.json")
  curl -sf -H "authorization: Bearer ${user#* }" "http://$ADDR/v1/users/${user%% *}/feed?limit=$LIMIT" >"$work/page.json"
  "${SERVER_CORE[@]}" target/release/examples/read_ceiling "$CEILING_ADDR" "$work/page.json" &
  CEILING=$!
  healthy "http://$CEILING_ADDR" 50 && return 0
  echo "the ceiling did not start" >&2
  exit 1
}

results="$work/results"
: >"$results"
for set in $BACKENDS; do
  KAFKA=0
  case $set in
    embedded) label="SQLite, in-process caches, embedded topics" ;;
    server)
      pg_isready -q -d "$PG_URL" || { echo "PostgreSQL at $PG_URL is not ready" >&2; exit 1; }
      if kafka; then KAFKA=1; label="PostgreSQL, Redis, Kafka (tansu)"; else label="PostgreSQL, Redis, embedded topics (no broker)"; fi
      ;;
    *) echo "unknown backend set: $set (embedded | server)" >&2; exit 1 ;;
  esac
  for strategy in $STRATEGIES; do
    echo "== $label, $strategy: seeding $USERS users ==" >&2
    mkdir -p "$work/data"
    seeded=$(
      # shellcheck disable=SC2046
      env -u DATABASE_URL -u REDIS_URL -u KAFKA_BROKERS $(backend_env "$set") RUST_LOG=error \
        target/release/feed-seed --users "$USERS" --at "$AT" --reset --out "$work/data/feed-seed.json"
    )
    echo "$seeded" >&2
    seed_seconds=$(echo "$seeded" | sed -n 's/.* in \([0-9.]*\) s (.*/\1/p')
    start_service "$set" "$strategy"
    for round in $(seq 1 "$ROUNDS"); do
      # The warm-up reads (the first round's rebuild every sampled timeline) go in before the
      # server's histogram is read, so it holds the measured reads only.
      k6run reads "$work/warm.json" -e RATE=1 -e DURATION=1s
      [ -n "$CEILING" ] || start_ceiling
      TARGET=$CEILING_ADDR k6run reads "$work/ceiling.json" -e RATE="$RATE" -e DURATION="${READ_SECONDS}s" -e WARM=0
      ceiling_p50=$(summary "$work/ceiling.json" feed_read_ms med)
      ceiling_p99=$(summary "$work/ceiling.json" feed_read_ms 'p(99)')
      buckets http_request_duration_seconds 'route="/v1/users/{id}/feed"' >"$work/server.before"
      cpu_before=$(cpu_seconds "$SERVER") redis_before=$(redis_cpu_seconds)
      k6run reads "$work/reads.json" -e RATE="$RATE" -e DURATION="${READ_SECONDS}s" -e WARM=0
      cpu_after=$(cpu_seconds "$SERVER") redis_after=$(redis_cpu_seconds)
      buckets http_request_duration_seconds 'route="/v1/users/{id}/feed"' >"$work/server.after"
      server_p99=$(p99_bucket "$work/server.before" "$work/server.after")
      p50=$(summary "$work/reads.json" feed_read_ms med)
      p99=$(summary "$work/reads.json" feed_read_ms 'p(99)')
      achieved=$(python3 -c "print(round($(summary "$work/reads.json" iterations count) / $READ_SECONDS))")
      dropped=$(summary "$work/reads.json" dropped_iterations count)
      reads=$(summary "$work/reads.json" iterations count)
      # Milliseconds of CPU per read: the service's and Redis's, over the measured reads.
      service_cpu=$(python3 -c "print(f'{($cpu_after - $cpu_before) * 1000 / max(1, $reads):.3f}')")
      redis_cpu=$(python3 -c "print(f'{($redis_after - $redis_before) * 1000 / max(1, $reads):.3f}')")

      drain
      published=$(metric feed_posts_published_total) inserts=$(metric feed_fanout_inserts_total)
      k6run posts "$work/posts.json" -e POST_VUS="$POST_VUS" -e DURATION="${POST_SECONDS}s"
      posts_per_s=$(python3 -c "print(round($(summary "$work/posts.json" iterations count) / $POST_SECONDS))")
      drain
      writes=$(python3 -c "print(round(($(metric feed_fanout_inserts_total) - $inserts) / max(1, $(metric feed_posts_published_total) - $published), 1))")

      inserts=$(metric feed_fanout_inserts_total)
      lag_sum=$(metric feed_fanout_lag_seconds_sum) lag_count=$(metric feed_fanout_lag_seconds_count)
      k6run celebrity "$work/celebrity.json" -e RATE=0 -e DURATION=1s -e READERS="$READERS" -e SETTLE=600s
      drain
      star_writes=$(python3 -c "print(round($(metric feed_fanout_inserts_total) - $inserts))")
      star_lag=$(python3 -c "
lag = $(metric feed_fanout_lag_seconds_sum) - $lag_sum
events = $(metric feed_fanout_lag_seconds_count) - $lag_count
print(f'{lag * 1000:.0f}' if events else '-')")
      star_seen=$(summary "$work/celebrity.json" celebrity_post_visible_ms max)
      echo "result set=$set strategy=$strategy round=$round seed_s=$seed_seconds p50_ms=$p50 p99_ms=$p99 ceiling_p50_ms=$ceiling_p50 ceiling_p99_ms=$ceiling_p99 server_p99_ms=$server_p99 service_cpu_ms=$service_cpu redis_cpu_ms=$redis_cpu reads_per_s=$achieved dropped=$dropped posts_per_s=$posts_per_s writes_per_post=$writes star_writes=$star_writes star_lag_ms=$star_lag star_seen_ms=$star_seen" |
        tee -a "$results" >&2
    done

    # Ordinary posts at a pace fan-out keeps up with: how long until all followers have one.
    drain
    lag_sum=$(metric feed_fanout_lag_seconds_sum) lag_count=$(metric feed_fanout_lag_seconds_count)
    buckets feed_fanout_lag_seconds >"$work/lag.before"
    k6run posts "$work/paced.json" -e POST_RATE="$PACED_RATE" -e DURATION="${POST_SECONDS}s"
    drain
    buckets feed_fanout_lag_seconds >"$work/lag.after"
    paced=$(python3 -c "
events = $(metric feed_fanout_lag_seconds_count) - $lag_count
lag = $(metric feed_fanout_lag_seconds_sum) - $lag_sum
print(f'{lag / events * 1000:.0f}' if events else '-')")
    echo "paced set=$set strategy=$strategy rate=$PACED_RATE mean_lag_ms=$paced p99_bucket_ms=$(p99_bucket "$work/lag.before" "$work/lag.after")" |
      tee -a "$results" >&2
    stop_service
  done
  echo "label set=$set ${label// /_}" >>"$results"
done

echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores."
python3 - "$results" "$RATE" "$LIMIT" "$POST_VUS" "$PACED_RATE" <<'EOF'
import statistics, sys
from collections import defaultdict

path, rate, limit, vus, paced_rate = sys.argv[1:]
rounds, paced, labels = defaultdict(list), {}, {}
for line in open(path):
    kind, *fields = line.split()
    if kind == "label":
        labels[fields[0].split("=")[1]] = fields[1].replace("_", " ")
        continue
    row = dict(field.split("=", 1) for field in fields)
    if kind == "result":
        rounds[(row["set"], row["strategy"])].append(row)
    else:
        paced[(row["set"], row["strategy"])] = row

def median(rows, key):
    values = [float(r[key]) for r in rows if r[key] not in ("-", "")]
    return statistics.median(values) if values else None

def ms(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f} ms"

print()
print(f"| backends | strategy | seed | read p50 | read p99 | ceiling p50 / p99 | read p99 / ceiling p99 | server p99 ≤ | CPU per read: service, Redis "
      f"| reads/s (of {rate}) | posts/s ({vus} posters) "
      f"| fan-out writes per post | post in all followers' timelines (at {paced_rate}/s: mean, p99 ≤) "
      "| celebrity post: writes | celebrity post: in every timeline | celebrity post: seen by the polled followers |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (backend, strategy), rows in rounds.items():
    p = paced.get((backend, strategy), {})
    lag = "at once (no fan-out)" if strategy == "pull" else f"{p.get('mean_lag_ms', '-')} ms, {p.get('p99_bucket_ms', '-')} ms"
    star_lag = median(rows, "star_lag_ms")
    star_in_all = "at once (no fan-out)" if star_lag is None else ms(star_lag, 0)
    print(f"| {labels.get(backend, backend)} | {strategy} | {median(rows, 'seed_s'):.1f} s "
          f"| {ms(median(rows, 'p50_ms'), 2)} | **{ms(median(rows, 'p99_ms'), 2)}** "
          f"| {ms(median(rows, 'ceiling_p50_ms'), 2)} / {ms(median(rows, 'ceiling_p99_ms'), 2)} "
          f"| {median(rows, 'p99_ms') / median(rows, 'ceiling_p99_ms'):.1f}x | {ms(median(rows, 'server_p99_ms'), 2)} "
          f"| {ms(median(rows, 'service_cpu_ms'), 3)}, {'-' if backend == 'embedded' else ms(median(rows, 'redis_cpu_ms'), 3)} "
          f"| {median(rows, 'reads_per_s'):.0f} "
          f"| {median(rows, 'posts_per_s'):.0f} | {median(rows, 'writes_per_post'):.1f} | {lag} "
          f"| **{median(rows, 'star_writes'):.0f}** | {star_in_all} | {ms(median(rows, 'star_seen_ms'), 0)} |")
print()
print(f"Medians of the rounds; reads: first pages of {limit} by 1,000 sampled users whose timelines were built first;")
print("the ceiling: the same reads, in the same round, of a bare handler answering a page the service served.")
EOF
