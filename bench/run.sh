#!/usr/bin/env bash
# tokend benchmarks (issue 7): hand-out vs bare hyper (TCP and unix socket),
# durable refresh throughput against a fast fake provider, start-up, memory,
# idle CPU and hand-out at one million credentials, the refresh budget on a
# virtual clock (issue 16), the `cargo bench` micro-benchmarks, and (issue 17) the API proxy against the same GET sent
# straight to a fast fake API, and its memory while streaming a large answer.
# Prints one table; every ratio is against a baseline measured in the same
# run (the machines are shared and noisy).
#
#   bench/run.sh            full run (about 10-15 minutes on 2 cores)
#   QUICK=1 bench/run.sh    short run: fewer rounds and credentials
#
# Knobs (environment): ROUNDS, HANDOUT_SECS, SCALE_N, REFRESH_N, IDLE_SECS,
# BUDGET_N / BUDGET_HOT / BUDGET_MINUTES (the budget simulation),
# SERVER_CPU / LOAD_CPU (taskset cores), BENCH_DIR (keep the work files),
# CALLGRIND_N1 / CALLGRIND_N2 / CALLGRIND_IDS (the instruction count),
# STREAM_MB (the proxy's streamed answer), PROXY_CG_N1 / PROXY_CG_N2 (its
# instruction count; needs valgrind, skipped without it), ONLY (sections to run, e.g.
# `ONLY=scale`, `ONLY=callgrind` or `ONLY=handout,proxy`; default all of
# callgrind, handout, refresh, scale, budget, micro, proxy). With BENCH_DIR, a scale
# database already seeded there with SCALE_N credentials is reused, not seeded again.
# `ONLY=postgres`: cluster mode on the PostgreSQL server PG_URL names
# (default postgres://root@127.0.0.1:5432/postgres; needs psql): durable
# refreshes/s, propagation across 3 members, start with SCALE_N credentials
# (PG_PARTS picks among refresh, propagation, start; default all three;
# PG_EXTRAS=1 makes the fake token endpoint answer with Cronofy's account_id and sub,
# which the seeded credentials hold already; PG_EXTRAS=new seeds them without).
# Its databases are created for the run and dropped at the end (with BENCH_DIR,
# the start's seeded database is kept and reused by the next run there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    : "${ROUNDS:=1}" "${HANDOUT_SECS:=5}" "${SCALE_N:=200000}" "${REFRESH_N:=20000}" "${IDLE_SECS:=10}"
    : "${BUDGET_N:=100000}" "${BUDGET_HOT:=1000}" "${BUDGET_MINUTES:=20}"
else
    : "${ROUNDS:=3}" "${HANDOUT_SECS:=10}" "${SCALE_N:=1000000}" "${REFRESH_N:=100000}" "${IDLE_SECS:=60}"
    : "${BUDGET_N:=1000000}" "${BUDGET_HOT:=10000}" "${BUDGET_MINUTES:=60}"
fi
HANDOUT_N=${HANDOUT_N:-100000}
CALLGRIND_N1=${CALLGRIND_N1:-2000}
CALLGRIND_N2=${CALLGRIND_N2:-12000}
CALLGRIND_IDS=${CALLGRIND_IDS:-1000}
STREAM_MB=${STREAM_MB:-100}
PG_PARTS=${PG_PARTS:-refresh,propagation,start}
ONLY=${ONLY:-callgrind,handout,refresh,scale,budget,micro,proxy}
section() { [[ ,$ONLY, == *,$1,* ]]; }
CONNECTIONS=64
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
KEY=tkd_bench_0123456789abcdefghijklmnopqrstuvwxyzABCDEF
WORK=${BENCH_DIR:-$(mktemp -d /tmp/tokend-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"

say() { printf '==> %s\n' "$*" >&2; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }

# --- what it needs -----------------------------------------------------------
need=()
for tool in wrk curl sqlite3 taskset python3; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if section callgrind; then command -v valgrind >/dev/null || need+=(valgrind); fi
if ((${#need[@]})); then
    pkgs=()
    for tool in "${need[@]}"; do
        case $tool in taskset) pkgs+=(util-linux) ;; python3) pkgs+=(python3-minimal) ;; *) pkgs+=("$tool") ;; esac
    done
    say "installing ${pkgs[*]}"
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get install -y "${pkgs[@]}" >/dev/null 2>&1 ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "${pkgs[@]}" >/dev/null; }
fi
# Pin only where there are two cores to pin to.
if (($(nproc) < 2)); then pin_server=(); pin_load=(); else
    pin_server=(taskset -c "$SERVER_CPU"); pin_load=(taskset -c "$LOAD_CPU"); fi

say "building (release)"
export SQLX_OFFLINE=true
cargo build --release --locked -q -p tokend -p tokend-bench --bins
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

# --- processes ----------------------------------------------------------------
PIDS=()
PG_DBS=()
PG_ADMIN=${PG_URL:-postgres://root@127.0.0.1:5432/postgres}
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for db in "${PG_DBS[@]}"; do
        psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    [[ -n ${BENCH_DIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# wait_log FILE PATTERN [TENTHS]: the first match of PATTERN (a sed -E
# capture) in FILE, waiting up to TENTHS tenths of a second (default 300).
wait_log() {
    local i
    for i in $(seq "${3:-300}"); do
        local hit
        hit=$(sed -nE "s/.*$2.*/\\1/p" "$1" 2>/dev/null | head -1)
        if [[ -n $hit ]]; then echo "$hit"; return; fi
        sleep 0.1
    done
    echo "timed out waiting for /$2/ in $1" >&2; cat "$1" >&2; exit 1
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_bare() { # DIR -> sets BARE_PID BARE_URL BARE_SOCK
    BARE_SOCK=$1/bare.sock
    "${pin_server[@]}" "$BIN/bare-hyper" --listen 127.0.0.1:0 --unix "$BARE_SOCK" 2>"$1/bare.log" &
    BARE_PID=$!; PIDS+=("$BARE_PID")
    BARE_URL=http://$(wait_log "$1/bare.log" 'listening on (127[^ ]*)$')
    wait_log "$1/bare.log" "listening on (.*bare\\.sock)" >/dev/null
}

write_config() { # DIR PROVIDER_URL
    cat >"$1/tokend.toml" <<EOF
[server]
listen = ["127.0.0.1:0"]
unix_socket = "$1/tokend.sock"
[storage]
database = "$1/tokend.db"
[log]
format = "json"
level = "info"
[providers.cronofy]
kind = "cronofy"
api_base_url = "$2"
client_id = "bench"
client_secret = "bench-secret"
request_timeout_secs = 20
max_requests_per_minute = 100000000
burst = 1000000
[clients.bench]
key_sha256 = "$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)"
credentials = ["*"]
EOF
}

start_tokend() { # DIR [unpinned] -> sets TOKEND_PID TOKEND_URL START_NS
    local pin=("${pin_server[@]}")
    [[ ${2:-} != unpinned ]] || pin=()
    START_NS=$(date +%s%N)
    "${pin[@]}" "$BIN/tokend" --config "$1/tokend.toml" serve 2>"$1/tokend.log" &
    TOKEND_PID=$!; PIDS+=("$TOKEND_PID")
    TOKEND_URL=http://$(wait_log "$1/tokend.log" '.*"message":"listening","address":"([^"]*)".*')
}

wait_ready() { # URL -> milliseconds since START_NS when /readyz said 200
    local deadline=$((SECONDS + 300))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "$1/readyz") == 200 ]]; do
        ((SECONDS < deadline)) || { echo "never ready" >&2; exit 1; }
        sleep 0.02
    done
    echo $((($(date +%s%N) - START_NS) / 1000000))
}

field() { sed -nE "s/^$1: ([0-9]+).*/\\1/p" | head -1; }

handout_tcp() { # URL IDS -> "rps p50_us p99_us"
    local out
    out=$(BENCH_IDS=$2 BENCH_KEY=$KEY "${pin_load[@]}" wrk -t1 -c$CONNECTIONS -d"${HANDOUT_SECS}s" \
        -s "$ROOT/bench/wrk-random-id.lua" "$1/" 2>&1)
    [[ $(field non_2xx <<<"$out") == 0 ]] || { echo "$out" >&2; exit 1; }
    echo "$(field rps <<<"$out") $(field p50_us <<<"$out") $(field p99_us <<<"$out")"
}

handout_unix() { # SOCKET IDS -> "rps p50_us p99_us"
    local out
    out=$("${pin_load[@]}" "$BIN/uds-load" --socket "$1" --ids "$2" --key "$KEY" \
        --connections $CONNECTIONS --duration-secs "$HANDOUT_SECS")
    [[ $(field non_2xx <<<"$out") == 0 ]] || { echo "$out" >&2; exit 1; }
    echo "$(field rps <<<"$out") $(field p50_us <<<"$out") $(field p99_us <<<"$out")"
}

# handout_rounds TAG IDS: alternates baseline and tokend, ROUNDS times, on
# TCP and the unix socket; records every run (the table takes medians).
handout_rounds() {
    local r v
    for r in $(seq "$ROUNDS"); do
        v=$(handout_tcp "$BARE_URL" "$2"); put "$1_tcp_bare" "$v"
        v=$(handout_tcp "$TOKEND_URL" "$2"); put "$1_tcp_tokend" "$v"
        if [[ $1 == handout ]]; then
            v=$(handout_unix "$BARE_SOCK" "$2"); put "$1_unix_bare" "$v"
            v=$(handout_unix "$WORK/handout/tokend.sock" "$2"); put "$1_unix_tokend" "$v"
        fi
        say "$1 round $r/$ROUNDS done"
    done
}

proc_kb() { sed -nE "s/^$2:[[:space:]]+([0-9]+) kB/\\1/p" "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kernel_ticks() { awk '{print $15}' "/proc/$1/stat"; }
# Busy ticks of the whole machine: user, nice, system, irq, softirq.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# --- 0. instructions per hand-out (callgrind) ---------------------------------
# callgrind counts the user-space instructions a process executes, the same
# figure whatever else the machine does. Each server runs twice under it,
# answering N1 and then N2 hand-outs on one keep-alive TCP connection (the
# client is not measured); the difference over N2 - N1 is the cost of one
# request, start-up and shutdown cancelling out. tokend is waited for by its
# `ready` log line, not by polling /readyz, so both runs serve only the
# hand-outs.
callgrind_run() { # WHAT N -> total instructions of the server process
    local what=$1 n=$2 dir=$WORK/callgrind pid addr log out
    log=$dir/$what.$n.log
    out=$dir/$what.$n.callgrind
    local vg=(valgrind --tool=callgrind --callgrind-out-file="$out" --log-file="$dir/$what.$n.valgrind")
    case $what in
        tokend)
            "${vg[@]}" "$BIN/tokend" --config "$dir/tokend.toml" serve 2>"$log" &
            pid=$!; PIDS+=("$pid")
            addr=$(wait_log "$log" '.*"message":"listening","address":"([^"]*)".*' 3000)
            wait_log "$log" '.*"message":"(ready)".*' 3000 >/dev/null ;;
        bare)
            "${vg[@]}" "$BIN/bare-hyper" --listen 127.0.0.1:0 2>"$log" &
            pid=$!; PIDS+=("$pid")
            addr=$(wait_log "$log" 'listening on (127[^ ]*)$' 3000) ;;
    esac
    local load
    load=$("$BIN/uds-load" --tcp "$addr" --requests "$n" --connections 1 \
        --ids "$CALLGRIND_IDS" --key "$KEY")
    [[ $(field non_2xx <<<"$load") == 0 && $(field requests <<<"$load") == "$n" ]] ||
        { echo "$load" >&2; exit 1; }
    stop "$pid"
    sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$out" | head -1
}

if section callgrind; then
say "callgrind: $CALLGRIND_N1 and $CALLGRIND_N2 hand-outs, tokend and bare hyper"
mkdir -p "$WORK/callgrind"
write_config "$WORK/callgrind" "http://127.0.0.1:9"
"$BIN/seed" --config "$WORK/callgrind/tokend.toml" --count "$CALLGRIND_IDS" >&2
for what in bare tokend; do
    i1=$(callgrind_run "$what" "$CALLGRIND_N1")
    i2=$(callgrind_run "$what" "$CALLGRIND_N2")
    put "callgrind_$what" "$i1 $i2 $CALLGRIND_N1 $CALLGRIND_N2"
    say "callgrind: $what $(((i2 - i1) / (CALLGRIND_N2 - CALLGRIND_N1))) instructions per hand-out"
done
fi

# The baseline server serves the hand-out rounds of (1) and (3).
if section handout || section scale; then start_bare "$WORK"; fi

# --- 1. hand-out at 100,000 credentials ---------------------------------------
if section handout; then
say "hand-out: seeding $HANDOUT_N credentials"
put handout_n "$HANDOUT_N"
mkdir -p "$WORK/handout"
write_config "$WORK/handout" "http://127.0.0.1:9"
"$BIN/seed" --config "$WORK/handout/tokend.toml" --count "$HANDOUT_N" >&2
start_tokend "$WORK/handout"
wait_ready "$TOKEND_URL" >/dev/null
handout_rounds handout "$HANDOUT_N"
stop "$TOKEND_PID"
fi

# --- 2. durable refresh throughput --------------------------------------------
if section refresh; then
say "refresh: the fake provider alone"
"${pin_server[@]}" "$BIN/fake-token" --listen 127.0.0.1:0 2>"$WORK/fake.log" &
FAKE_PID=$!; PIDS+=("$FAKE_PID")
FAKE_URL=http://$(wait_log "$WORK/fake.log" 'listening on (.*)$')
out=$("${pin_load[@]}" wrk -t1 -c16 -d"${HANDOUT_SECS}s" -s "$ROOT/bench/wrk-fake-token.lua" "$FAKE_URL/oauth/token" 2>&1)
put fake_alone_rps "$(field rps <<<"$out")"
before=$(curl -s "$FAKE_URL/count")

# During the refresh run the fake gets the load generator's core, tokend the server's.
((${#pin_load[@]})) && taskset -a -p -c "$LOAD_CPU" "$FAKE_PID" >/dev/null
say "refresh: $REFRESH_N grants all due at once"
mkdir -p "$WORK/refresh"
write_config "$WORK/refresh" "$FAKE_URL"
"$BIN/seed" --config "$WORK/refresh/tokend.toml" --count "$REFRESH_N" --due now >&2
start_tokend "$WORK/refresh"
wait_ready "$TOKEND_URL" >/dev/null
deadline=$((SECONDS + 900))
while (($(sqlite3 "$WORK/refresh/tokend.db" 'SELECT count(*) FROM grants WHERE generation > 0') < REFRESH_N)); do
    ((SECONDS < deadline)) || { echo "refreshes did not finish" >&2; break; }
    sleep 1
done
put refresh_provider_calls $(($(curl -s "$FAKE_URL/count") - before))
put refresh_durable "$(sqlite3 "$WORK/refresh/tokend.db" 'SELECT count(*) FROM grants WHERE generation > 0')"
put refresh_log "$WORK/refresh/tokend.log"
stop "$TOKEND_PID"
stop "$FAKE_PID"
fi

# --- 3. one million credentials -----------------------------------------------
if section scale; then
put scale_n "$SCALE_N"
mkdir -p "$WORK/scale"
write_config "$WORK/scale" "http://127.0.0.1:9"
# A database seeded by an earlier run in the same BENCH_DIR is reused (the
# seeding takes minutes); tokend's own migrations bring it up to date.
seeded=$(sqlite3 "$WORK/scale/tokend.db" 'SELECT count(*) FROM credentials' 2>/dev/null || echo 0)
if [[ $seeded == "$SCALE_N" ]]; then
    say "scale: reusing the $SCALE_N credentials seeded in $WORK/scale"
    # Migrates the reused database now, outside the start-up measured below.
    "$BIN/seed" --config "$WORK/scale/tokend.toml" --count 0 >&2
else
    say "scale: seeding $SCALE_N credentials"
    rm -f "$WORK/scale"/tokend.db* "$WORK/scale/tokend.key"
    "$BIN/seed" --config "$WORK/scale/tokend.toml" --count "$SCALE_N" >&2
fi
sync
# Start-up has both cores (nothing else runs then); from ready on, tokend is
# pinned like in (1) for the idle and hand-out figures.
start_tokend "$WORK/scale" unpinned
ready_ms=$(wait_ready "$TOKEND_URL")
put scale_ready_ms "$ready_ms"
# The CPU time the start took (every thread, user and system): on a shared
# machine the wall time also counts waiting for the cores.
put scale_ready_cpu_ms $(($(cpu_ticks "$TOKEND_PID") * 1000 / $(getconf CLK_TCK)))
((${#pin_server[@]})) && taskset -a -p -c "$SERVER_CPU" "$TOKEND_PID" >/dev/null
put scale_rss_ready_kb "$(proc_kb "$TOKEND_PID" VmRSS)"
say "scale: ${IDLE_SECS}s idle"
sleep 2
t0=$(cpu_ticks "$TOKEND_PID"); s0=$(date +%s%N)
sleep "$IDLE_SECS"
t1=$(cpu_ticks "$TOKEND_PID"); s1=$(date +%s%N)
put scale_idle_cpu_pct "$(python3 -c "print(f'{($t1-$t0)/$(getconf CLK_TCK)/(($s1-$s0)/1e9)*100:.3f}')")"
handout_rounds scale "$SCALE_N"
put scale_rss_kb "$(proc_kb "$TOKEND_PID" VmRSS)"
put scale_hwm_kb "$(proc_kb "$TOKEND_PID" VmHWM)"
stop "$TOKEND_PID"
fi
if section handout || section scale; then stop "$BARE_PID"; fi

# --- 4. the refresh budget on a virtual clock ----------------------------------
# budget-sim runs tokend's refresher, cache, scheduler and budget over a real
# SQLite database and a provider over loopback, moving a manual clock a
# second at a time: one warm-up hour, then BUDGET_MINUTES measured.
if section budget; then
mkdir -p "$WORK/budget"
cat >"$WORK/budget/tokend.toml" <<TOML
[storage]
database = "$WORK/budget/tokend.db"
[log]
level = "warn"
[providers.cronofy]
kind = "cronofy"
client_id = "bench"
client_secret = "bench-secret"
max_requests_per_minute = 500
burst = 50
refresh_share = 0.5
TOML
say "budget: $BUDGET_N grants, $BUDGET_HOT hot, one virtual hour + $BUDGET_MINUTES minutes"
"${pin_server[@]}" "$BIN/budget-sim" --config "$WORK/budget/tokend.toml" \
    --grants "$BUDGET_N" --hot "$BUDGET_HOT" --minutes "$BUDGET_MINUTES" >>"$RESULTS"
fi

# --- 4. cluster mode on PostgreSQL (ONLY=postgres) ----------------------------
if section postgres; then
command -v psql >/dev/null || { echo "ONLY=postgres needs psql (postgresql-client)" >&2; exit 1; }
pg_db() { # NAME -> a fresh database NAME (dropped at exit); sets PG_DB_URL
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >&2
    PG_DBS+=("$1"); PG_DB_URL=${PG_ADMIN%/*}/$1
}
pg_config() { # DIR PROVIDER_URL: write_config on PG_DB_URL and the shared key
    write_config "$1" "$2"
    sed -i "s|^database = .*|database = \"$PG_DB_URL\"\nencryption_key_file = \"$WORK/pg.key\"|" "$1/tokend.toml"
    echo "manage = true" >>"$1/tokend.toml"
}
pg_count() { psql -tA "$PG_DB_URL" -c "$1"; }
pg_part() { [[ ,$PG_PARTS, == *,$1,* ]]; }
(umask 077; head -c 32 /dev/urandom >"$WORK/pg.key")

if pg_part refresh || pg_part propagation; then
# PG_EXTRAS=1: the fake answers as Cronofy does, with `account_id` and
# `sub`, and the seeded credentials hold them already (as a code exchange
# or an import stores them): each answer is compared with what the
# credentials hold and nothing is merged. PG_EXTRAS=new: the same answers
# to credentials seeded without them, so every commit takes the longer
# path that merges them into the credentials.
fake_args=(); seed_extras=()
case ${PG_EXTRAS:-0} in
    0) ;;
    1) fake_args=(--cronofy-extras)
       seed_extras=(--extras '{"account_id":"acc_5700a00eb0ccd07000000000","sub":"acc_5700a00eb0ccd07000000000"}') ;;
    new) fake_args=(--cronofy-extras) ;;
    *) echo "PG_EXTRAS must be 0, 1 or new" >&2; exit 2 ;;
esac
"${pin_load[@]}" "$BIN/fake-token" --listen 127.0.0.1:0 "${fake_args[@]}" 2>"$WORK/pg-fake.log" &
FAKE_PID=$!; PIDS+=("$FAKE_PID")
FAKE_URL=http://$(wait_log "$WORK/pg-fake.log" 'listening on (.*)$')
fi

if pg_part refresh; then
say "postgres: $REFRESH_N grants all due at once"
before=$(curl -s "$FAKE_URL/count")
pg_db "tokend_bench_refresh_$$"
mkdir -p "$WORK/pg-refresh"
pg_config "$WORK/pg-refresh" "$FAKE_URL"
"$BIN/seed" --config "$WORK/pg-refresh/tokend.toml" --count "$REFRESH_N" --due now --sealed \
    "${seed_extras[@]}" >&2
start_tokend "$WORK/pg-refresh"
wait_ready "$TOKEND_URL" >/dev/null
deadline=$((SECONDS + 900))
while (($(pg_count 'SELECT count(*) FROM grants WHERE generation > 0') < REFRESH_N)); do
    ((SECONDS < deadline)) || { echo "refreshes did not finish" >&2; break; }
    sleep 1
done
put pg_refresh_provider_calls $(($(curl -s "$FAKE_URL/count") - before))
put pg_refresh_durable "$(pg_count 'SELECT count(*) FROM grants WHERE generation > 0')"
put pg_refresh_log "$WORK/pg-refresh/tokend.log"
stop "$TOKEND_PID"
fi

if pg_part propagation; then
say "postgres: propagation across 3 members"
members=()
for m in 1 2 3; do
    mkdir -p "$WORK/pg-member$m"
    pg_config "$WORK/pg-member$m" "$FAKE_URL"
    start_tokend "$WORK/pg-member$m" unpinned
    wait_ready "$TOKEND_URL" >/dev/null
    members+=("${TOKEND_URL#http://}")
done
put pg_propagation "$("$BIN/propagation" --members "$(IFS=,; echo "${members[*]}")" --key "$KEY" --count "${PROPAGATION_N:-300}")"
for pid in "${PIDS[@]}"; do [[ $pid == "$FAKE_PID" ]] || stop "$pid"; done
fi
if pg_part refresh || pg_part propagation; then stop "$FAKE_PID"; fi

if pg_part start; then
say "postgres: start with $SCALE_N credentials"
mkdir -p "$WORK/pg-scale"
# With BENCH_DIR the seeded database (tokend_bench_start_SCALE_N) and its key
# (in BENCH_DIR) are kept, and a later run in the same BENCH_DIR starts on
# them again instead of seeding for minutes; without, both are the run's own.
seeded=0
if [[ -n ${BENCH_DIR:-} ]]; then
    start_db=tokend_bench_start_$SCALE_N
    PG_DB_URL=${PG_ADMIN%/*}/$start_db
    if [[ -s $WORK/pg-scale/pg.key ]]; then
        seeded=$(psql -tA "$PG_DB_URL" -c 'SELECT count(*) FROM credentials' 2>/dev/null || echo 0)
    fi
else
    start_db=tokend_bench_scale_$$
    pg_db "$start_db"
fi
pg_config "$WORK/pg-scale" "http://127.0.0.1:9"
sed -i "s|^encryption_key_file = .*|encryption_key_file = \"$WORK/pg-scale/pg.key\"|" "$WORK/pg-scale/tokend.toml"
if [[ $seeded == "$SCALE_N" ]]; then
    say "postgres: reusing the $SCALE_N credentials seeded in $start_db"
    # Migrates the reused database now, outside the start measured below.
    "$BIN/seed" --config "$WORK/pg-scale/tokend.toml" --count 0 >&2
else
    (umask 077; head -c 32 /dev/urandom >"$WORK/pg-scale/pg.key")
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $start_db WITH (FORCE)" -c "CREATE DATABASE $start_db" >&2
    "$BIN/seed" --config "$WORK/pg-scale/tokend.toml" --count "$SCALE_N" --sealed >&2
    psql -q "$PG_DB_URL" -c "VACUUM ANALYZE" >&2
fi
put pg_scale_n "$SCALE_N"
load_before=$(cut -d' ' -f1 /proc/loadavg)
start_tokend "$WORK/pg-scale" unpinned
put pg_scale_ready_ms "$(wait_ready "$TOKEND_URL")"
put pg_scale_load "$load_before..$(cut -d' ' -f1 /proc/loadavg)"
put pg_scale_rss_ready_kb "$(proc_kb "$TOKEND_PID" VmRSS)"
# CPU time to ready (all threads), tokend's and its PostgreSQL backends'
# (when the server runs on this machine): steadier than the wall time.
put pg_scale_cpu_ms $(($(cpu_ticks "$TOKEND_PID") * 1000 / $(getconf CLK_TCK)))
backends=0
for pid in $(psql -tA "$PG_DB_URL" -c "SELECT pid FROM pg_stat_activity
                                       WHERE datname = current_database() AND pid <> pg_backend_pid()"); do
    [[ -r /proc/$pid/stat ]] && backends=$((backends + $(cpu_ticks "$pid")))
done
put pg_scale_backend_cpu_ms $((backends * 1000 / $(getconf CLK_TCK)))
stop "$TOKEND_PID"
fi
fi

# --- 5. micro-benchmarks ------------------------------------------------------
if section micro; then
say "cargo bench"
cargo bench --locked -q -p tokend-bench --bench hot >"$WORK/divan.txt" 2>&1 || cat "$WORK/divan.txt" >&2
put divan "$WORK/divan.txt"
fi

# --- 5. the API proxy --------------------------------------------------------
# The same GET sent straight to a fast fake API and through tokend's proxy,
# round by round, back to back. Nothing is pinned here: a proxied request
# passes between tokend's tasks and threads several times (server
# connection, client connection, back), and two worker threads pinned to one
# core that others also use turn each hand-off into a wait for that core.
# Latency at one connection (what a request pays), throughput at
# CONNECTIONS with the CPU time tokend and the fake API spent per request;
# then tokend's memory while a STREAM_MB answer streams through, once read
# at full speed and once by a slow reader (25 MB/s).
if section proxy; then
"$BIN/fake-api" --listen 127.0.0.1:0 2>"$WORK/fake-api.log" &
API_PID=$!; PIDS+=("$API_PID")
API_URL=http://$(wait_log "$WORK/fake-api.log" 'listening on (.*)$')
mkdir -p "$WORK/proxy"
write_config "$WORK/proxy" "$API_URL"
"$BIN/seed" --config "$WORK/proxy/tokend.toml" --count 1 >&2
start_tokend "$WORK/proxy" unpinned
wait_ready "$TOKEND_URL" >/dev/null
PROXIED=/v1/proxy/cred-0000000

# get_path URL PATH CONNECTIONS -> "rps p50_us p99_us tokend_cpu_ns fake_cpu_ns
# tokend_kernel_ns machine_busy_ns": CPU time per request during the run of
# tokend and of the fake API (user + kernel), tokend's in the kernel alone,
# and the whole machine's busy time (every process, wrk's too; steal left out).
get_path() {
    local out t0 f0 k0 m0 n
    t0=$(cpu_ticks "$TOKEND_PID"); f0=$(cpu_ticks "$API_PID")
    k0=$(kernel_ticks "$TOKEND_PID"); m0=$(machine_ticks)
    out=$(BENCH_PATH=$2 BENCH_KEY=$KEY wrk -t1 -c"$3" -d"${HANDOUT_SECS}s" \
        -s "$ROOT/bench/wrk-path.lua" "$1/" 2>&1)
    n=$(field requests <<<"$out")
    [[ $(field non_2xx <<<"$out") == 0 && $n -gt 0 ]] || { echo "$out" >&2; exit 1; }
    local per=$((1000000000 / $(getconf CLK_TCK)))
    echo "$(field rps <<<"$out") $(field p50_us <<<"$out") $(field p99_us <<<"$out")" \
        "$((($(cpu_ticks "$TOKEND_PID") - t0) * per / n)) $((($(cpu_ticks "$API_PID") - f0) * per / n))" \
        "$((($(kernel_ticks "$TOKEND_PID") - k0) * per / n)) $((($(machine_ticks) - m0) * per / n))"
}
for r in $(seq "$ROUNDS"); do
    put proxy_c1_direct "$(get_path "$API_URL" /v1/calendars 1)"
    put proxy_c1_tokend "$(get_path "$TOKEND_URL" "$PROXIED/v1/calendars" 1)"
    put proxy_cN_direct "$(get_path "$API_URL" /v1/calendars $CONNECTIONS)"
    put proxy_cN_tokend "$(get_path "$TOKEND_URL" "$PROXIED/v1/calendars" $CONNECTIONS)"
    say "proxy round $r/$ROUNDS done"
done
put proxy_connections "$CONNECTIONS"
put proxy_cores "$(nproc)"

# stream RATE -> "bytes seconds rss_before_kb rss_peak_kb rss_after_kb"
stream() {
    local bytes=$((STREAM_MB * 1000000)) before peak=0 v got
    sleep 1
    before=$(proc_kb "$TOKEND_PID" VmRSS)
    rm -f "$WORK/proxy/streamed"
    echo "$before" >"$WORK/proxy/peak"
    ( while [[ ! -e $WORK/proxy/streamed ]]; do
          v=$(proc_kb "$TOKEND_PID" VmRSS); ((v > peak)) && peak=$v && echo "$peak" >"$WORK/proxy/peak"
          sleep 0.02
      done ) &
    local sampler=$!
    got=$(curl -sS -o /dev/null --limit-rate "$1" -w '%{size_download} %{time_total}' \
        -H "Authorization: Bearer $KEY" "$TOKEND_URL$PROXIED/stream/$bytes")
    touch "$WORK/proxy/streamed"; wait "$sampler"
    [[ ${got%% *} == "$bytes" ]] || { echo "streamed $got of $bytes bytes" >&2; exit 1; }
    echo "$got $before $(cat "$WORK/proxy/peak") $(proc_kb "$TOKEND_PID" VmRSS)"
}
# Instructions per GET (callgrind, whatever the machine's load): tokend
# proxying, and the fake API answering directly, each run twice under
# callgrind (PROXY_CG_N1 then PROXY_CG_N2 GETs on one keep-alive
# connection); the difference over N2 - N1 is one request's cost.
proxy_cg() { # WHAT N -> total instructions of WHAT (tokend or fake)
    local what=$1 n=$2 dir=$WORK/proxy-cg pid addr log out load
    mkdir -p "$dir"
    log=$dir/$what.$n.log; out=$dir/$what.$n.callgrind
    local vg=(valgrind --tool=callgrind --callgrind-out-file="$out" --log-file="$dir/$what.$n.valgrind")
    if [[ $what == tokend ]]; then
        "${vg[@]}" "$BIN/tokend" --config "$WORK/proxy/tokend.toml" serve 2>"$log" &
        pid=$!; PIDS+=("$pid")
        addr=$(wait_log "$log" '.*"message":"listening","address":"([^"]*)".*' 3000)
        wait_log "$log" '.*"message":"(ready)".*' 3000 >/dev/null
        load=$("$BIN/uds-load" --tcp "$addr" --requests "$n" --connections 1 --ids 1 \
            --key "$KEY" --prefix "${PROXIED%cred-0000000}" --suffix /v1/calendars)
    else
        "${vg[@]}" "$BIN/fake-api" --listen 127.0.0.1:0 2>"$log" &
        pid=$!; PIDS+=("$pid")
        addr=$(wait_log "$log" 'listening on (.*)$' 3000)
        load=$("$BIN/uds-load" --tcp "$addr" --requests "$n" --connections 1 --ids 1 \
            --key "$KEY" --prefix /v1/calendars/)
    fi
    [[ $(field non_2xx <<<"$load") == 0 && $(field requests <<<"$load") == "$n" ]] ||
        { echo "$load" >&2; exit 1; }
    stop "$pid"
    sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$out" | head -1
}
if command -v valgrind >/dev/null; then
    stop "$TOKEND_PID"
    n1=${PROXY_CG_N1:-500} n2=${PROXY_CG_N2:-3000}
    for what in tokend fake; do
        put "proxy_callgrind_$what" "$(proxy_cg "$what" "$n1") $(proxy_cg "$what" "$n2") $n1 $n2"
    done
    say "proxy: instructions per GET measured"
    start_tokend "$WORK/proxy" unpinned
    wait_ready "$TOKEND_URL" >/dev/null
fi

say "proxy: streaming $STREAM_MB MB"
put proxy_stream_fast "$(stream 100G)"
put proxy_stream_slow "$(stream 25M)"
stop "$TOKEND_PID"
stop "$API_PID"
fi

# --- the table ------------------------------------------------------------------
{
    echo "machine: $(nproc) cores, $(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
    echo "settings: ONLY=$ONLY ROUNDS=$ROUNDS HANDOUT_SECS=$HANDOUT_SECS HANDOUT_N=$HANDOUT_N REFRESH_N=$REFRESH_N SCALE_N=$SCALE_N IDLE_SECS=$IDLE_SECS connections=$CONNECTIONS CALLGRIND_N1=$CALLGRIND_N1 CALLGRIND_N2=$CALLGRIND_N2"
} >&2
python3 "$ROOT/bench/table.py" "$RESULTS"
