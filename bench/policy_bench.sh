#!/usr/bin/env bash
# Authorization policy benchmark (issue 4 §9): requests/s for GET /fhir/Patient/{id} over
# keep-alive TLS by
#   - the billing role: its element policy applies (6 of Patient's elements visible, the
#     narrative removed, meta.tag SUBSETTED added), and
#   - the clinician role: same policy evaluation, no element hidden (the body goes out
#     byte for byte as stored),
# on one server, one realistic ~2.3 KB Patient (bench/policy_eval_bench.cc holds it), in
# alternating rounds (clinician first in odd rounds, billing first in even ones) so that
# drift and other load on the machine hit both alike. Reported: each round's billing /
# clinician ratio of req/s and their median (the requirement: the policy stage costs under
# 10% of throughput), the server's CPU µs per request for both, and the stage's own cost
# in-process (Google Benchmark, bench/policy_eval_bench.cc).
# Usage: bench/policy_bench.sh [DURATION_S=10] [CONNECTIONS=16] [ROUNDS=4]
# (defaults: about 2 minutes once built; an even ROUNDS puts each role first equally often)
# Env: PHIGATE_BENCH_BUILD (build directory, default build), WRK_THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
DURATION=${1:-10}
CONNS=${2:-16}
ROUNDS=${3:-4}
THREADS=${WRK_THREADS:-2}
BUILD=${PHIGATE_BENCH_BUILD:-build}

./scripts/setup.sh >/dev/null
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" --target phigate policy_eval_bench >/dev/null
PHIGATE="./$BUILD/phigate"
EVAL_BENCH="./$BUILD/bench/policy_eval_bench"

work=$(mktemp -d /tmp/phigate-policybench.XXXXXX)
cleanup() {
  if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

PORT=$(free_port)
"$PHIGATE" serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for_server "$work/stdout"
CA="$work/data/tls/cert.pem"
declare -A token
token[billing]=$(client_token "$PHIGATE" "$work/data" "$PORT" bench-billing "system/*.cruds" billing)
token[clinician]=$(client_token "$PHIGATE" "$work/data" "$PORT" bench-clinician "system/*.cruds" clinician)

# Billing may not create a Patient: the clinician seeds it.
"$EVAL_BENCH" --patient_json >"$work/patient.json"
id=$(curl -sS --fail --cacert "$CA" -H "Authorization: Bearer ${token[clinician]}" \
  -H 'content-type: application/fhir+json' --data-binary @"$work/patient.json" \
  "https://127.0.0.1:$PORT/fhir/Patient" | node -p "JSON.parse(require('fs').readFileSync(0)).id")
URL="https://127.0.0.1:$PORT/fhir/Patient/$id"

# What each role receives: billing exactly its 6 elements plus resourceType, id and meta,
# tagged SUBSETTED; clinician everything, narrative included.
for role in clinician billing; do
  curl -sS --fail --cacert "$CA" -H "Authorization: Bearer ${token[$role]}" "$URL" >"$work/$role.json"
done
node - "$work/clinician.json" "$work/billing.json" <<'JS'
const fs = require('fs');
const [clinician, billing] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f)));
const expected = ['resourceType', 'id', 'meta', 'identifier', 'name', 'telecom', 'gender',
                  'birthDate', 'address'];
const keys = Object.keys(billing);
const subsetted = (billing.meta.tag || []).some((t) => t.code === 'SUBSETTED');
if (keys.length !== expected.length || !expected.every((k) => keys.includes(k)) || !subsetted) {
  console.error(`unexpected billing view: ${keys.join(',')} subsetted=${subsetted}`);
  process.exit(1);
}
if (!clinician.text || !clinician.contact || !clinician.generalPractitioner) {
  console.error('unexpected clinician view');
  process.exit(1);
}
JS
echo "Patient as stored and sent to clinician: $(wc -c <"$work/clinician.json") bytes;" \
  "as sent to billing: $(wc -c <"$work/billing.json") bytes"

# Warm-up, not measured: TLS sessions, caches, the server's in-memory ciphertext cache.
for role in clinician billing; do
  wrk -t"$THREADS" -c"$CONNS" -d3s -H "Authorization: Bearer ${token[$role]}" "$URL" >/dev/null
done

# rps[role], cpu[role]: space-separated figures of every round, split again on purpose
# when passed to median (shellcheck SC2086 below).
declare -A rps cpu last last_cpu
ratios=()
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(clinician billing); else order=(billing clinician); fi
  for role in "${order[@]}"; do
    out=$(wrk_run "$server_pid" "$THREADS" "$CONNS" "$DURATION" "$URL" \
      -H "Authorization: Bearer ${token[$role]}")
    read -r r c <<<"$out"
    rps[$role]="${rps[$role]:-} $r"
    cpu[$role]="${cpu[$role]:-} $c"
    last[$role]=$r
    last_cpu[$role]=$c
  done
  ratio=$(awk -v a="${last[billing]}" -v b="${last[clinician]}" 'BEGIN {printf "%.3f", a / b}')
  ratios+=("$ratio")
  echo "round $round (${order[*]}): clinician ${last[clinician]} req/s ${last_cpu[clinician]} µs," \
    "billing ${last[billing]} req/s ${last_cpu[billing]} µs; ratio billing/clinician $ratio"
done

echo
echo "GET /fhir/Patient/{id}, wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS alternating rounds ($(nproc) cores)"
# shellcheck disable=SC2086
for role in clinician billing; do
  printf '  %-10s median %7.0f req/s  server CPU %6.1f µs/request  (req/s:%s; µs:%s)\n' \
    "$role" "$(median ${rps[$role]})" "$(median ${cpu[$role]})" "${rps[$role]}" "${cpu[$role]}"
done
m=$(median "${ratios[@]}")
mapfile -t sorted < <(printf '%s\n' "${ratios[@]}" | sort -g)
printf '  ratio billing/clinician: median %.3f, min %.3f, max %.3f (rounds: %s)\n' \
  "$m" "${sorted[0]}" "${sorted[-1]}" "${ratios[*]}"
# shellcheck disable=SC2086
cpu_c=$(median ${cpu[clinician]})
# shellcheck disable=SC2086
cpu_b=$(median ${cpu[billing]})
awk -v m="$m" -v c="$cpu_c" -v b="$cpu_b" 'BEGIN {
  printf "  element policy cost: %.1f%% of throughput (limit 10%%): %s\n", 100 * (1 - m),
         (1 - m) < 0.10 ? "PASS" : "FAIL"
  printf "  server CPU per request, billing - clinician: %+.1f µs (%+.1f%%)\n", b - c,
         100 * (b - c) / c
}'

# The stage's own cost, in-process: Policy::Evaluate + ParseNarrowing + ApplyView on the
# same Patient, for both roles, against the whole request's server CPU time above.
echo
echo "policy stage in-process (Google Benchmark, CPU time per request), share of a clinician request (${cpu_c} µs):"
# BM_Stage*: the whole stage; BM_Evaluate*: Policy::Evaluate alone; the rest are parts of
# BM_StageBilling (see policy_eval_bench.cc).
"$EVAL_BENCH" --benchmark_min_time=0.5 2>/dev/null | awk -v cpu="$cpu_c" '
  /^BM_/ {printf "  %-24s %8.3f µs = %5.2f%%\n", $1, $4 / 1000, 100 * ($4 / 1000) / cpu}'
