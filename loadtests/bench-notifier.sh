#!/usr/bin/env bash
# The notifier's pipeline benchmark behind notifier/DESIGN.md: N notifications from intake to the
# SMS provider, beside a bare produce-consume loop on the same transport in the same run
# (notifier/examples/pipeline_bench/main.rs says what one run does).
#
#   loadtests/bench-notifier.sh                        # SQLite + embedded topics, then PostgreSQL + Kafka
#   BACKENDS=embedded loadtests/bench-notifier.sh      # one of them: embedded | kafka
#
# For each backend set:
#   1. ROUNDS runs of BENCH_N notifications accepted as fast as intake takes them, each measuring
#      its own bare loops first (one committing each batch as the pipeline does, which the ratio
#      is taken against, and one committing each record) and its floor (the pipeline's two hops
#      and provider call with nothing else; the provider calls alone): throughput and the ratios
#      (medians of the rounds). Their p50/p99
#      are mostly time queued behind the burst, so
#   2. one run paced at half the median throughput for LATENCY_SECONDS: the latency from intake to
#      provider of a pipeline that keeps up, as bench-redirect.sh measures the redirect's;
#   3. one run of PROFILE_N that also counts SQL statements per notification.
# Prints every run's output (each ends with where the time went per stage) and two Markdown
# tables, the pipeline's and the floor's. The Kafka set uses PostgreSQL at DATABASE_URL (default:
# the local one CI uses) and the broker at KAFKA_BROKERS (default 127.0.0.1:9092); if nothing
# listens there, tansu is started as .ci/run's ensure_kafka starts it, with in-memory storage,
# and stopped at the end.
#
# Run nothing else meanwhile: a compile in another terminal halves the numbers. The
# NOTIFIER_PARTITIONS and NOTIFIER_WORKERS of the environment are used (4 and 2 by default).
#
# Needs python3, and pg_isready for the Kafka set.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
BENCH_N=${BENCH_N:-10000}
LATENCY_SECONDS=${LATENCY_SECONDS:-20}
PROFILE_N=${PROFILE_N:-2000}
BACKENDS=${BACKENDS:-embedded kafka}
PG_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
export BENCH_N

command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }
cargo build --release -q -p notifier --example pipeline_bench
bench=target/release/examples/pipeline_bench

results=$(mktemp -d)
TANSU_PID=""
cleanup() {
  if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; fi
  rm -rf "$results"
}
trap cleanup EXIT

listening() { # host:port
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

ensure_kafka() {
  listening "$BROKERS" && return
  local tansu
  tansu=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  [ -x "$tansu" ] || { echo "nothing listens on $BROKERS and tansu is not installed (see .ci/run)" >&2; exit 1; }
  "$tansu" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
    --storage-engine memory://tansu/ >"$results/tansu.log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 1 50); do listening "$BROKERS" && return; sleep 0.2; done
  echo "tansu did not start on $BROKERS" >&2
  exit 1
}

# One run on a backend set: its output goes to stderr as it comes, its result line is added to
# $results/<file>.
run() { # set, file, then extra environment
  local set=$1 file=$2
  shift 2
  local env=(env -u DATABASE_URL -u KAFKA_BROKERS RUST_LOG=error)
  if [ "$set" = kafka ]; then env+=(DATABASE_URL="$PG_URL" KAFKA_BROKERS="$BROKERS"); fi
  local status=0
  "${env[@]}" "$@" "$bench" | tee "$results/output" >&2 || status=$?
  grep '^result ' "$results/output" >>"$results/$file" || { echo "the $set run failed" >&2; exit 1; }
  # A run that lost or duplicated deliveries prints its result line, then fails: it is counted.
  [ "$status" = 0 ] || echo "the $set run lost or duplicated deliveries (counted in the table)" >&2
}

for set in $BACKENDS; do
  case $set in
    embedded) ;;
    kafka)
      pg_isready -q -d "$PG_URL" || { echo "PostgreSQL at $PG_URL is not ready" >&2; exit 1; }
      ensure_kafka
      ;;
    *) echo "unknown backend set: $set (embedded | kafka)" >&2; exit 1 ;;
  esac
  for round in $(seq 1 "$ROUNDS"); do
    echo "== $set, round $round of $ROUNDS ==" >&2
    run "$set" "$set"
  done
  rate=$(python3 -c "import statistics, sys; print(max(1, round(statistics.median(
    float(l.split('pipeline_per_s=')[1].split()[0]) for l in open(sys.argv[1])) / 2)))" "$results/$set")
  echo "== $set, $rate notifications/s for $LATENCY_SECONDS s (half the median throughput) ==" >&2
  run "$set" "$set.latency" BENCH_RATE="$rate" BENCH_N=$((rate * LATENCY_SECONDS))
  echo "== $set, profiled run ($PROFILE_N notifications, counting SQL statements) ==" >&2
  run "$set" "$set.profile" BENCH_N="$PROFILE_N" BENCH_COUNT_STATEMENTS=1
done

echo
python3 - "$results" $BACKENDS <<'EOF'
import statistics, sys
from pathlib import Path

def runs(name):
    return [dict(field.split("=", 1) for field in line.split()[1:])
            for line in (Path(sys.argv[1]) / name).read_text().splitlines()]

print("| backends | pipeline (notifications/s) | bare loop, a commit per batch (records/s) "
      "| pipeline / bare | lost | duplicated | burst p50 / p99 (ms) | paced at "
      "| paced p50 / p99 (ms) | bare loop, a commit per record (records/s) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in sys.argv[2:]:
    rounds, (paced,) = runs(name), runs(name + ".latency")
    median = lambda key: statistics.median(float(run[key]) for run in rounds)
    lost = sum(int(run["lost"]) for run in rounds + [paced])
    duplicated = sum(int(run["duplicated"]) for run in rounds + [paced])
    print(f"| {rounds[0]['backend']} | {median('pipeline_per_s'):.0f} | {median('bare_per_s'):.0f} "
          f"| {median('ratio') * 100:.3g}% | {lost} | {duplicated} "
          f"| {median('p50_ms'):.0f} / {median('p99_ms'):.0f} | {paced['rate']}/s "
          f"| {float(paced['p50_ms']):.0f} / {float(paced['p99_ms']):.0f} "
          f"| {median('bare_each_record_per_s'):.0f} |")

# The floor (notifier/examples/pipeline_bench/skeleton.rs): what the pipeline's shape costs here
# with none of its own work, against the same bare loop.
print()
print("| backends | bare loop (records/s) | skeleton: two hops and a provider call (records/s) "
      "| skeleton / bare | provider calls alone (calls/s) | provider calls / bare "
      "| pipeline / skeleton |")
print("|---|---|---|---|---|---|---|")
for name in sys.argv[2:]:
    rounds = runs(name)
    median = lambda key: statistics.median(float(run[key]) for run in rounds)
    share = lambda key: statistics.median(float(run[key]) / float(run["bare_per_s"]) for run in rounds)
    print(f"| {rounds[0]['backend']} | {median('bare_per_s'):.0f} | {median('skeleton_per_s'):.0f} "
          f"| {share('skeleton_per_s') * 100:.3g}% | {median('provider_per_s'):.0f} "
          f"| {share('provider_per_s') * 100:.3g}% "
          f"| {statistics.median(float(r['pipeline_per_s']) / float(r['skeleton_per_s']) for r in rounds) * 100:.3g}% |")
EOF
echo
echo "Throughput, ratio and burst latencies: medians of $ROUNDS rounds of $BENCH_N notifications."
echo "Paced: one run at half that throughput for $LATENCY_SECONDS s. Lost and duplicated: summed over every run."
