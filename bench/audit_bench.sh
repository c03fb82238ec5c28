#!/usr/bin/env bash
# Audit trail benchmark (issue 5 §7): GET /fhir/Patient/{id} over keep-alive TLS against
#   - the normal server: every request's audit record is sealed, chained and made durable
#     (fsync, group-committed) before the response leaves, and
#   - the same code built with PHIGATE_BENCH_NO_AUDIT (the audit stage records nothing),
# at 1, 16 and 64 concurrent connections, in alternating rounds (each server first
# equally often) so that drift and other load hit both alike. Reported per concurrency:
# median req/s and p99 of each, the audited/unaudited throughput ratio (the requirement:
# the durable audit costs at most 10% at 64 connections), and the audited server's records
# per fsync over the whole run (from its /metrics).
# Usage: bench/audit_bench.sh [DURATION_S=10] [ROUNDS=2]
# Env: PHIGATE_BENCH_BUILD (default build-bench), PHIGATE_BENCH_NOAUDIT_BUILD (default
# build-bench-noaudit), WRK_THREADS (default 2), AUDIT_BENCH_DIR (where the data dirs go,
# default /tmp: the audited server's fsyncs hit that file system), SERVER_THREADS (both
# servers' [server] threads; default 0 = the server's default), AUDIT_COMMIT_INTERVAL_US
# ([audit] commit_interval_us, default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
DURATION=${1:-10}
ROUNDS=${2:-2}
THREADS=${WRK_THREADS:-2}
BUILD=${PHIGATE_BENCH_BUILD:-build-bench}
NOAUDIT_BUILD=${PHIGATE_BENCH_NOAUDIT_BUILD:-build-bench-noaudit}

./scripts/setup.sh >/dev/null
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" --target phigate policy_eval_bench >/dev/null
cmake -S . -B "$NOAUDIT_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BENCH_NO_AUDIT=ON >/dev/null
cmake --build "$NOAUDIT_BUILD" --target phigate >/dev/null

work=$(mktemp -d "${AUDIT_BENCH_DIR:-/tmp}/phigate-auditbench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

declare -A port url token pid
"./$BUILD/bench/policy_eval_bench" --patient_json >"$work/patient.json"
for kind in audited unaudited; do
  bin="./$BUILD/phigate"
  [ "$kind" = unaudited ] && bin="./$NOAUDIT_BUILD/phigate"
  port[$kind]=$(free_port)
  printf '[server]\nthreads = %s\n[audit]\ncommit_interval_us = %s\n' "${SERVER_THREADS:-0}" \
    "${AUDIT_COMMIT_INTERVAL_US:-1000}" >"$work/$kind.toml"
  "$bin" serve --config "$work/$kind.toml" --data-dir "$work/$kind" --listen "127.0.0.1:${port[$kind]}" \
    >"$work/$kind.stdout" 2>"$work/$kind.stderr" &
  pid[$kind]=$!
  pids+=("${pid[$kind]}")
  wait_for_server "$work/$kind.stdout"
  token[$kind]=$(client_token "$bin" "$work/$kind" "${port[$kind]}" bench "system/*.cruds" \
    clinician,auditor)
  id=$(curl -sS --fail --cacert "$work/$kind/tls/cert.pem" \
    -H "Authorization: Bearer ${token[$kind]}" -H 'content-type: application/fhir+json' \
    --data-binary @"$work/patient.json" "https://127.0.0.1:${port[$kind]}/fhir/Patient" |
    node -p "JSON.parse(require('fs').readFileSync(0)).id")
  url[$kind]="https://127.0.0.1:${port[$kind]}/fhir/Patient/$id"
  wrk -t"$THREADS" -c16 -d3s -H "Authorization: Bearer ${token[$kind]}" "${url[$kind]}" >/dev/null
done
grep -q 'without the audit trail' "$work/unaudited.stderr" || {
  echo "the unaudited build did not announce itself" >&2
  exit 1
}
metrics() {
  curl -sS --fail --cacert "$work/audited/tls/cert.pem" \
    -H "Authorization: Bearer ${token[audited]}" "https://127.0.0.1:${port[audited]}/metrics"
}
records0=$(metrics | metric_value phigate_audit_records_total)
fsyncs0=$(metrics | metric_value phigate_audit_fsyncs_total)

echo "GET /fhir/Patient/{id} ($(wc -c <"$work/patient.json") bytes), wrk -t$THREADS" \
  "-d${DURATION}s, $ROUNDS alternating rounds per concurrency ($(nproc) cores)"
for conns in 1 16 64; do
  declare -A rps=() p99=()
  ratios=()
  t=$THREADS
  ((conns < t)) && t=$conns
  for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order=(audited unaudited); else order=(unaudited audited); fi
    declare -A last=()
    for kind in "${order[@]}"; do
      read -r r p < <(wrk_run_p99 "$t" "$conns" "$DURATION" "${url[$kind]}" \
        -H "Authorization: Bearer ${token[$kind]}")
      rps[$kind]="${rps[$kind]:-} $r"
      p99[$kind]="${p99[$kind]:-} $p"
      last[$kind]=$r
    done
    ratios+=("$(awk -v a="${last[audited]}" -v b="${last[unaudited]}" 'BEGIN {printf "%.3f", a / b}')")
  done
  # shellcheck disable=SC2086
  printf '  c=%-3s audited %7.0f req/s p99 %7.2f ms | unaudited %7.0f req/s p99 %7.2f ms | ratio %s (rounds: %s)\n' \
    "$conns" "$(median ${rps[audited]})" "$(median ${p99[audited]})" \
    "$(median ${rps[unaudited]})" "$(median ${p99[unaudited]})" \
    "$(median "${ratios[@]}")" "${ratios[*]}"
  if ((conns == 64)); then ratio64=$(median "${ratios[@]}"); fi
done
records1=$(metrics | metric_value phigate_audit_records_total)
fsyncs1=$(metrics | metric_value phigate_audit_fsyncs_total)
awk -v r="$((records1 - records0))" -v f="$((fsyncs1 - fsyncs0))" -v m="$ratio64" 'BEGIN {
  printf "  audited server: %d records in %d fsyncs = %.1f records per fsync\n", r, f, r / f
  printf "  durable audit cost at 64 connections: %.1f%% of throughput (limit 10%%): %s\n",
         100 * (1 - m), (1 - m) <= 0.10 ? "PASS" : "FAIL"
}'
