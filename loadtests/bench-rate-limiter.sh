#!/usr/bin/env bash
# The decision-API benchmark behind the ratios in rate-limiter/DESIGN.md.
#
# 1. In process: the decision API (`POST /api/v1/check`, random clients among 10,000, the
#    in-process store) against its ceiling, a bare axum handler that parses the same body and
#    answers a fixed decision (rate-limiter/examples/check_ceiling.rs). wrk, same run,
#    alternating, ROUNDS times; medians compared. Target: at least 0.70.
# 2. On Redis (when REDIS_URL is set), against `redis-benchmark -t get` on the same machine (its
#    plain GET rate, the most a Redis round trip can give), and the Redis commands each decision
#    costs (INFO commandstats, before and after):
#    - the Redis-backed decision, measured as redis-benchmark measures a GET: one client thread on
#      the load generator's core keeping CONNECTIONS decisions outstanding through the library
#      path (rate-limiter/examples/redis_decisions.rs). Target: at least 0.50.
#    - the decision API backed by Redis, end to end through HTTP (wrk): for the record, since
#      there the HTTP server and Redis share the server's two cores with the load generator.
#
#   loadtests/bench-rate-limiter.sh
#   REDIS_URL=redis://127.0.0.1:6379 loadtests/bench-rate-limiter.sh
#
# Needs wrk (apt-get install wrk), and redis-benchmark and redis-cli for the Redis part. Each
# server runs on core 0 with one tokio worker thread and wrk on core 1; Redis is not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-32}
CEILING=127.0.0.1:18080
LIMITER=127.0.0.1:18082
# The caller's key every decision sends (loadtests/check.lua reads it), registered at start.
export API_KEY=${API_KEY:-sk_b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0}

for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of this script)" >&2; exit 1; }
done

cargo build --release -q -p rate-limiter --bins --examples

cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

requests_per_second() {
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${RUN_SECONDS}s" -s loadtests/check.lua "$1" |
    awk '/Requests\/sec/ { print $2 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
wait_for() { for _ in $(seq 1 50); do curl -s -o /dev/null "$1" && return; sleep 0.2; done; }

start_limiter() {
  # The default log level (info), so that the per-request span is paid for as in production.
  TOKIO_WORKER_THREADS=1 RATE_LIMITER_ADDR="$LIMITER" RATE_LIMITER_CALLER_KEY="$API_KEY" "$@" \
    taskset -c 0 target/release/rate-limiter >/dev/null &
  LIMITER_PID=$!
  wait_for "http://$LIMITER/healthz"
}

TOKIO_WORKER_THREADS=1 taskset -c 0 target/release/examples/check_ceiling "$CEILING" &
wait_for "http://$CEILING/"
start_limiter env -u REDIS_URL

ceiling_runs=()
limiter_runs=()
for round in $(seq 1 "$ROUNDS"); do
  ceiling_runs+=("$(requests_per_second "http://$CEILING")")
  limiter_runs+=("$(requests_per_second "http://$LIMITER")")
  echo "round $round: ceiling ${ceiling_runs[-1]} req/s, in-process decision ${limiter_runs[-1]} req/s" >&2
done
ceiling=$(printf '%s\n' "${ceiling_runs[@]}" | median)
in_process=$(printf '%s\n' "${limiter_runs[@]}" | median)
echo
echo "in process: decision API $in_process req/s, bare axum handler $ceiling req/s," \
  "ratio $(python3 -c "print(f'{$in_process / $ceiling:.2f}')") (target 0.70)"

[ -n "${REDIS_URL:-}" ] || exit 0
for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
kill "$LIMITER_PID"
wait "$LIMITER_PID" 2>/dev/null || true
start_limiter env REDIS_URL="$REDIS_URL"

calls() { redis-cli -u "$REDIS_URL" info commandstats | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { print $3 }'; }
before_eval=$(calls evalsha); before_get=$(calls get); before_set=$(calls set)
decisions=500
for i in $(seq 1 $decisions); do
  curl -s -o /dev/null "http://$LIMITER/api/v1/check" -H 'content-type: application/json' \
    -H "authorization: Bearer $API_KEY" \
    -d "{\"rule\":\"per-user\",\"key\":\"commands:$i\"}"
done
per_decision() { python3 -c "print(f'{(${1:-0} - ${2:-0}) / $decisions:.2f}')"; }
per_decision_of() { python3 -c "print(f'{(${1:-0} - ${2:-0}) / $3:.2f}')"; }
echo "Redis commands per decision, one at a time: EVALSHA $(per_decision "$(calls evalsha)" "$before_eval")," \
  "and inside the script GET $(per_decision "$(calls get)" "$before_get")," \
  "SET $(per_decision "$(calls set)" "$before_set")"

# Under load, concurrent decisions share script calls (see src/store/redis.rs).
before_eval=$(calls evalsha)
handled=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d5s -s loadtests/check.lua "http://$LIMITER" |
  awk '/requests in/ { print $1 }')
echo "under load ($CONNECTIONS connections): $(per_decision_of "$(calls evalsha)" "$before_eval" "$handled")" \
  "EVALSHA per decision ($handled decisions)"

decision_runs=()
api_runs=()
get_runs=()
for round in $(seq 1 "$ROUNDS"); do
  decision_runs+=("$(taskset -c 1 target/release/examples/redis_decisions "$CONNECTIONS" "$RUN_SECONDS")")
  api_runs+=("$(requests_per_second "http://$LIMITER")")
  get_runs+=("$(taskset -c 1 redis-benchmark -u "$REDIS_URL" -t get -c "$CONNECTIONS" -n 300000 --csv |
    awk -F'"' '$2 == "GET" { print $4 }')")
  echo "round $round: Redis-backed decision ${decision_runs[-1]}/s, decision API on Redis" \
    "${api_runs[-1]} req/s, redis-benchmark GET ${get_runs[-1]} req/s" >&2
done
decisions_per_second=$(printf '%s\n' "${decision_runs[@]}" | median)
api=$(printf '%s\n' "${api_runs[@]}" | median)
get=$(printf '%s\n' "${get_runs[@]}" | median)
echo "on Redis: redis-benchmark GET $get req/s;" \
  "Redis-backed decision $decisions_per_second/s, ratio" \
  "$(python3 -c "print(f'{$decisions_per_second / $get:.2f}')") (target 0.50);" \
  "decision API on Redis $api req/s, ratio $(python3 -c "print(f'{$api / $get:.2f}')")"
