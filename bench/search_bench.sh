#!/usr/bin/env bash
# Search benchmark (issue 6 §7): PATIENTS synthetic Patients with OBS_PER_PATIENT
# Observations each (bench/synth), loaded with `phigate import` (timed), then the p50/p99
# latency of the four searches the issue names, over keep-alive HTTPS, with the manifest's
# sample queries (bench/search_bench.mjs: every answer is checked against the manifest's
# expected count), and the search index's size per resource (SQLite dbstat: the
# search_index table and its one secondary index, divided by the resources). Prints a
# markdown table for docs/benchmarks.md.
# Usage: bench/search_bench.sh [PATIENTS=1000000] [OBS_PER_PATIENT=5]
# Env: PHIGATE_BENCH_BUILD (Release build dir, default build-bench); SEARCH_BENCH_DIR (work
# dir, default bench/out/search: the generated data is cached there by arguments and seed,
# and the data dir is kept for inspection); SEED (default 1); SEARCH_REQUESTS (timed
# requests per search kind, default 1000); SEARCH_WARMUP (untimed requests first, default
# 100); SEARCH_CONCURRENCY (keep-alive connections, default 1: latency, not throughput);
# IMPORT_BATCH (resources per import transaction, default 1000); SEARCH_BENCH_KEEP_DATA=1
# reuses the data dir a previous run imported with the same arguments (no import timing).
# Needs node, curl and sqlite3 (the CLI, for dbstat).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
PATIENTS=${1:-1000000}
OBS=${2:-5}
SEED=${SEED:-1}
BUILD=${PHIGATE_BENCH_BUILD:-build-bench}
REQUESTS=${SEARCH_REQUESTS:-1000}
WARMUP=${SEARCH_WARMUP:-100}
CONCURRENCY=${SEARCH_CONCURRENCY:-1}
BATCH=${IMPORT_BATCH:-1000}

./scripts/setup.sh >/dev/null
command -v sqlite3 >/dev/null || {
  echo "search_bench: the sqlite3 command-line tool is needed (apt-get install sqlite3)" >&2
  exit 1
}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF \
  -DPHIGATE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" --target phigate >/dev/null
bin="./$BUILD/phigate"

work=${SEARCH_BENCH_DIR:-bench/out/search}
mkdir -p "$work"
key="p$PATIENTS-o$OBS-s$SEED"
synth="$work/synth-$key"
data="$work/data-$key"
import_json="$work/import-$key.json"

# The generator writes manifest.json last, so its presence means a complete run.
if [ ! -f "$synth/manifest.json" ]; then
  echo "generating $PATIENTS patients x $OBS observations (seed $SEED) into $synth" >&2
  node bench/synth/generate.mjs --patients "$PATIENTS" --observations-per-patient "$OBS" \
    --seed "$SEED" --out "$synth" --force
fi

if [ -n "${SEARCH_BENCH_KEEP_DATA:-}" ] && [ -f "$import_json" ] && [ -d "$data" ]; then
  echo "reusing $data (imported earlier: $(cat "$import_json"))" >&2
else
  rm -rf "$data" "$import_json"
  echo "importing into $data" >&2
  "$bin" import --data-dir "$data" --batch-size "$BATCH" --json \
    "$synth/Patient.ndjson" "$synth/Observation.ndjson" >"$import_json.tmp"
  mv "$import_json.tmp" "$import_json"
fi

server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(free_port)
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$work/serve.stdout" \
  2>"$work/serve.stderr" &
server_pid=$!
wait_for_server "$work/serve.stdout"
(umask 077 && "$bin" clients add --name search-bench --scope "system/*.rs" --roles clinician \
  --data-dir "$data" --json >"$work/client.json")

status=0
node bench/search_bench.mjs --base "https://127.0.0.1:$port/fhir" --ca "$data/tls/cert.pem" \
  --client-file "$work/client.json" --manifest "$synth/manifest.json" --requests "$REQUESTS" \
  --warmup "$WARMUP" --concurrency "$CONCURRENCY" --json "$work/latency-$key.json" \
  >"$work/latency-$key.md" || status=$?
kill "$server_pid"
wait "$server_pid" || true
server_pid=""

# Index size: the pages of the search_index table (WITHOUT ROWID: its primary key b-tree)
# and of search_index_by_token, over every resource (current versions).
read -r index_bytes index_rows resources db_bytes < <(sqlite3 -readonly "$data/phigate.db" \
  "SELECT (SELECT sum(pgsize) FROM dbstat WHERE name IN ('search_index', 'search_index_by_token')),
          (SELECT count(*) FROM search_index), (SELECT count(*) FROM resource_current),
          (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size());" |
  tr '|' ' ')

echo
echo "### Search: $PATIENTS Patients, $((PATIENTS * OBS)) Observations ($(nproc) cores, $(date -u +%Y-%m-%d))"
echo
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log("| import | resources | seconds | resources/s |\n|---|---:|---:|---:|");
console.log(`| phigate import --batch-size ${process.argv[2]} | ${r.resources} | ${r.seconds.toFixed(1)} | ${Math.round(r.resources_per_second)} |`);
' "$import_json" "$BATCH"
echo
cat "$work/latency-$key.md"
echo
awk -v b="$index_bytes" -v rows="$index_rows" -v n="$resources" -v db="$db_bytes" 'BEGIN {
  printf "| search index | value |\n|---|---:|\n"
  printf "| index bytes per resource (search_index + search_index_by_token) | %.0f |\n", b / n
  printf "| index entries per resource | %.1f |\n", rows / n
  printf "| index bytes per entry | %.1f |\n", b / rows
  printf "| database bytes per resource (everything) | %.0f |\n", db / n
}'
exit "$status"
