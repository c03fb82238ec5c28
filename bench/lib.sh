# shellcheck shell=bash
# Helpers shared by the benchmark scripts in bench/ (source it: `. bench/lib.sh`, from the
# repository root). Each helper prints its result on stdout; diagnostics go to stderr.
# Needs node, curl and wrk (scripts/setup.sh installs them).

# A TCP port free on 127.0.0.1 right now.
free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Waits (up to 10 s) until a server started with its stdout in FILE says it serves FHIR.
wait_for_server() {  # stdout_file
  for _ in $(seq 100); do
    grep -q "serving FHIR" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start; its output is in $1" >&2
  return 1
}

# Registers a confidential client with `phigate clients add` and prints an access token it
# gets with the client_credentials grant.
client_token() {  # binary data_dir port name scope roles
  local creds cid csec
  creds=$("$1" clients add --name "$4" --scope "$5" --roles "$6" --data-dir "$2" --json)
  cid=$(node -p "JSON.parse(process.argv[1]).client_id" "$creds")
  csec=$(node -p "JSON.parse(process.argv[1]).client_secret" "$creds")
  curl -sS --fail --cacert "$2/tls/cert.pem" -u "$cid:$csec" -d grant_type=client_credentials \
    "https://127.0.0.1:$3/oauth2/token" |
    node -p "JSON.parse(require('fs').readFileSync(0)).access_token"
}

# The CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() {  # pid
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# The median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

# Runs wrk once against a server and prints "REQ_PER_S CPU_US_PER_REQUEST": throughput, and
# the server's CPU time per request over the run (from /proc; more robust to other load on
# the machine than req/s). Fails if any answer was not 2xx; socket errors are reported.
# Extra wrk arguments (-H, -s ...) follow the url.
wrk_run() {  # server_pid threads connections duration_s url [wrk args...]
  local pid=$1 threads=$2 conns=$3 duration=$4 url=$5 out t0 t1 n
  shift 5
  t0=$(cpu_ticks "$pid")
  out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" "$@" "$url")
  t1=$(cpu_ticks "$pid")
  if echo "$out" | grep -q 'Non-2xx'; then
    echo "wrk: answers other than 2xx from $url:" >&2
    echo "$out" >&2
    return 1
  fi
  echo "$out" | grep 'Socket errors' >&2 || true  # timeouts under load: shown, not fatal
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$n" \
    '/Requests\/sec/ {printf "%s %.1f\n", $2, t / hz * 1e6 / n}'
}

# Runs wrk once with latency statistics and prints "REQ_PER_S P99_MS". Fails like wrk_run
# on answers other than 2xx.
wrk_run_p99() {  # threads connections duration_s url [wrk args...]
  local threads=$1 conns=$2 duration=$3 url=$4 out
  shift 4
  out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$@" "$url")
  if echo "$out" | grep -q 'Non-2xx'; then
    echo "wrk: answers other than 2xx from $url:" >&2
    echo "$out" >&2
    return 1
  fi
  echo "$out" | grep 'Socket errors' >&2 || true
  echo "$out" | awk '
    /Requests\/sec/ {rps = $2}
    $1 == "99%" {v = $2; ms = v + 0
      if (v ~ /us$/) ms = ms / 1000; else if (v ~ /ms$/) ms = ms; else if (v ~ /s$/) ms = ms * 1000
      p99 = ms}
    END {printf "%s %.3f\n", rps, p99}'
}

# The value of a counter in a Prometheus text page.
metric_value() {  # name < page
  awk -v n="$1" '$1 == n {print $2}'
}
