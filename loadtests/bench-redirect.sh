#!/usr/bin/env bash
# The cached-redirect benchmark behind the numbers in url-shortener/DESIGN.md.
#
# 1. Throughput: the shortener's redirect of a cached code against its ceiling, a bare axum
#    handler that only returns a redirect (url-shortener/examples/redirect_ceiling.rs). Both are
#    loaded with wrk in the same run, alternating, ROUNDS times; the medians are compared.
# 2. Latency: the same redirect at half of the throughput it just reached, at a fixed rate with
#    oha (open loop, corrected for coordinated omission), reporting p50 and p99, next to the
#    ceiling's p99 at the same rate (the machine's own tail, which no handler can beat).
#
#   loadtests/bench-redirect.sh                                   # embedded backends
#   REDIS_URL=redis://127.0.0.1:6379 loadtests/bench-redirect.sh  # Redis behind the near cache
#   REDIS_URL=… SHORTENER_NEAR_CACHE_MS=0 loadtests/bench-redirect.sh   # every read from Redis
#
# Needs wrk (apt-get install wrk) and oha (cargo install oha). On a 2-core machine each server
# runs on core 0 with one tokio worker thread and the load tool on core 1, so neither steals from
# the other; Redis and PostgreSQL, when used, are not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-32}
LATENCY_ROUNDS=${LATENCY_ROUNDS:-3}
LATENCY_SECONDS=${LATENCY_SECONDS:-10}
CEILING=127.0.0.1:18080
SHORTENER=127.0.0.1:18081
AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

for tool in wrk oha taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of this script)" >&2; exit 1; }
done

cargo build --release -q -p url-shortener --bins --examples

workdir=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

TOKIO_WORKER_THREADS=1 taskset -c 0 target/release/examples/redirect_ceiling "$CEILING" &
# The default log level (info), so that the per-request span is paid for as in production; its
# output goes nowhere, as a log shipper would take it off the box.
TOKIO_WORKER_THREADS=1 SHORTENER_ADDR="$SHORTENER" SDLAB_DATA_DIR="$workdir" \
  taskset -c 0 target/release/url-shortener >/dev/null &

for url in "http://$CEILING/x" "http://$SHORTENER/healthz"; do
  for _ in $(seq 1 50); do curl -s -o /dev/null "$url" && break; sleep 0.2; done
done

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
KEY=$(curl -sf "http://$SHORTENER/api/v1/keys" -H 'content-type: application/json' \
  -d '{"name":"bench"}' | json_field key)
CODE=$(curl -sf "http://$SHORTENER/api/v1/links" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"url":"https://example.com/landing/page"}' | json_field code)
status=$(curl -s -o /dev/null -w '%{http_code}' -A "$AGENT" "http://$SHORTENER/$CODE")
[ "$status" = 302 ] || { echo "the redirect answered $status" >&2; exit 1; }

requests_per_second() {
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${RUN_SECONDS}s" -H "User-Agent: $AGENT" "$1" |
    awk '/Requests\/sec/ { print $2 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

ceiling_runs=()
redirect_runs=()
for round in $(seq 1 "$ROUNDS"); do
  ceiling_runs+=("$(requests_per_second "http://$CEILING/$CODE")")
  redirect_runs+=("$(requests_per_second "http://$SHORTENER/$CODE")")
  echo "round $round: ceiling ${ceiling_runs[-1]} req/s, redirect ${redirect_runs[-1]} req/s" >&2
done
ceiling=$(printf '%s\n' "${ceiling_runs[@]}" | median)
redirect=$(printf '%s\n' "${redirect_runs[@]}" | median)
ratio=$(python3 -c "print(f'{$redirect / $ceiling:.2f}')")
half=$(python3 -c "print(int($redirect / 2))")

# Latency at a fixed rate: the shortener and, for reference, the ceiling at the same rate, each
# LATENCY_ROUNDS times (this machine is shared and its tails are noisy); medians are reported.
latency() {  # url → "p50 p99 achieved-rate statuses" in ms and req/s
  taskset -c 1 oha --no-tui --output-format json -z "${LATENCY_SECONDS}s" -q "$half" \
    --latency-correction -c "$CONNECTIONS" --redirect 0 -H "User-Agent: $AGENT" "$1" |
    python3 -c '
import json, sys
report = json.load(sys.stdin)
pct = report["latencyPercentiles"]
p50, p99 = pct["p50"] * 1000, pct["p99"] * 1000
rate = report["summary"]["requestsPerSec"]
codes = ",".join(f"{k}:{v}" for k, v in sorted(report["statusCodeDistribution"].items()))
print(f"{p50:.2f} {p99:.2f} {rate:.0f} {codes}")
'
}
redirect_p50s=() redirect_p99s=() ceiling_p99s=()
for round in $(seq 1 "$LATENCY_ROUNDS"); do
  read -r p50 p99 achieved statuses < <(latency "http://$SHORTENER/$CODE")
  read -r _ ceiling_p99 _ _ < <(latency "http://$CEILING/$CODE")
  redirect_p50s+=("$p50") redirect_p99s+=("$p99") ceiling_p99s+=("$ceiling_p99")
  echo "latency round $round at $achieved req/s: redirect p50 $p50 ms p99 $p99 ms ($statuses), ceiling p99 $ceiling_p99 ms" >&2
done
p50=$(printf '%s\n' "${redirect_p50s[@]}" | median)
p99=$(printf '%s\n' "${redirect_p99s[@]}" | median)
ceiling_p99=$(printf '%s\n' "${ceiling_p99s[@]}" | median)

backends="SQLite, in-process cache"
if [ -n "${REDIS_URL:-}" ]; then
  if [ "${SHORTENER_NEAR_CACHE_MS:-1000}" = 0 ]; then backends="Redis, no near cache"; else backends="Redis + near cache"; fi
fi
[ -n "${DATABASE_URL:-}" ] && backends="PostgreSQL, ${backends#SQLite, }"

echo
echo "| backends | ceiling req/s | redirect req/s | ratio | half rate | redirect p50 | redirect p99 | ceiling p99 at that rate |"
echo "|---|---|---|---|---|---|---|---|"
echo "| $backends | ${ceiling%.*} | ${redirect%.*} | **$ratio** | $half | $p50 ms | **$p99 ms** | $ceiling_p99 ms |"
