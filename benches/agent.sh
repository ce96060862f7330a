#!/usr/bin/env bash
# Epitaph's agent footprint benchmark: what epitaph-agent costs the instance it runs on,
# against the targets of issue 3 and side by side with rsyslog.
#
#   1. builds epitaph-agent with the `image` profile (release with fat LTO, as images
#      get it) and the helpers (null-receiver, line-writer) in release;
#      strips a copy of the agent and runs that copy;
#   2. starts null-receiver (OTLP + lifecycle that ack without storing, plus a TCP line
#      sink) on the helper CPU, so the agent's speed is measured and not a server's;
#   3. starts the agent, limited to one CPU (taskset), tailing an empty file: idle RSS
#      and CPU; then line-writer appends 200-byte lines at 1,000 and 10,000 lines/s:
#      RSS and CPU % of one core while shipping; then idle again;
#   4. throughput: pre-writes N lines, then, for each round, a fresh agent with
#      `read_from_beginning = true` (lines/s from start to the last line acked) and an
#      rsyslogd of its own (imfile -> omfwd TCP to the sink, same CPU limit) on the same
#      file: lines/s and CPU time per line of both;
#   5. prints the figures with their targets and pass/miss; kills everything it started.
#
# Usage: benches/agent.sh [--lines N] [--rounds N] [--rate-seconds S] [--idle-seconds S]
#                         [--line-bytes B] [--agent-cpu C] [--helper-cpu C]
#                         [--agent-config 'key = value']... [--agent-env NAME=VALUE]...
#                         [--skip-rsyslog] [--no-build] [--agent-bin PATH] [--keep]
# Needs bash, coreutils, awk, util-linux (taskset) and binutils (strip); installs the
# Debian package rsyslog when it is missing (as root). Only loopback is used. Every wait
# is bounded; the whole run with the defaults takes about 3 minutes.
set -euo pipefail

LINES=2000000
ROUNDS=3
RATE_SECONDS=20
IDLE_SECONDS=10
LINE_BYTES=200
AGENT_CPU=1
HELPER_CPU=0
AGENT_CONFIG_EXTRA=()
AGENT_ENV=()
SKIP_RSYSLOG=0
BUILD=1
# An agent binary to measure instead of the one built here (e.g. a copy of an earlier
# build, to compare two versions under the same machine load).
AGENT_SOURCE=""
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lines) LINES="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --rate-seconds) RATE_SECONDS="$2"; shift 2 ;;
        --idle-seconds) IDLE_SECONDS="$2"; shift 2 ;;
        --line-bytes) LINE_BYTES="$2"; shift 2 ;;
        --agent-cpu) AGENT_CPU="$2"; shift 2 ;;
        --helper-cpu) HELPER_CPU="$2"; shift 2 ;;
        --agent-config) AGENT_CONFIG_EXTRA+=("$2"); shift 2 ;;
        --agent-env) AGENT_ENV+=("$2"); shift 2 ;;
        --skip-rsyslog) SKIP_RSYSLOG=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --agent-bin) AGENT_SOURCE="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "agent.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$ROUNDS" -ge 1 ]] || { echo "agent.sh: --rounds must be at least 1" >&2; exit 2; }

log() { echo "[agent.sh] $*" >&2; }
die() { echo "[agent.sh] error: $*" >&2; exit 1; }

WORKSPACE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WORKSPACE"

WORK="$(mktemp -d -t epitaph-agent-bench-XXXXXX)"
# Every process this script starts, until it has been stopped and reaped (so that a pid
# the kernel hands out again is never signalled).
STARTED_PIDS=()
forget_pid() {
    local pid kept=()
    for pid in "${STARTED_PIDS[@]}"; do [[ "$pid" == "$1" ]] || kept+=("$pid"); done
    STARTED_PIDS=("${kept[@]}")
}
# Running and not a zombie waiting to be reaped.
is_running() { [[ -r "/proc/$1/stat" ]] && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]]; }
# TERM, then KILL after $2 seconds (default 5), then reap; always bounded.
stop_process() {
    local pid="$1" patience="${2:-5}"
    [[ -n "$pid" ]] || return 0
    if is_running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((patience * 10))); do is_running "$pid" || break; sleep 0.1; done
        if is_running "$pid"; then
            log "pid $pid did not stop within ${patience} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}
cleanup() {
    local index
    # Newest first: an agent still flushing needs its receiver.
    for ((index = ${#STARTED_PIDS[@]} - 1; index >= 0; index--)); do
        stop_process "${STARTED_PIDS[index]}" 3
    done
    if [[ "$KEEP" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# First number after "key": in a one-line JSON object (no jq needed); 0 if absent.
json_number() {
    local value
    value="$(grep -o "\"$2\":-\?[0-9.eE+-]*" "$1" 2>/dev/null | head -n 1 | cut -d: -f2 || true)"
    echo "${value:-0}"
}
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
fmt() { awk -v value="$2" "BEGIN { printf \"$1\", value }"; }
now() { date +%s.%N; }
# utime + stime of a whole process (all threads), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { fmt '%.1f' "$(calc "$1 / 1024")"; }
# Median of the arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# CPU time of each thread, busiest first, e.g. "epitaph-agent/4242=93 epitaph-agent/4243=12".
thread_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        [[ -r "$task/stat" ]] && cat "$task/stat"
    done 2>/dev/null | awk '{
        # The name sits between the first "(" and the last ")" and may hold spaces; the
        # fields after it start with the state (3rd), so utime and stime (14th, 15th)
        # are the 12th and 13th from there.
        opening = index($0, "("); closing = 0
        for (i = length($0); i > opening; i--) if (substr($0, i, 1) == ")") { closing = i; break }
        split(substr($0, closing + 2), fields, " ")
        print fields[12] + fields[13], substr($0, opening + 1, closing - opening - 1) "/" $1
    }' | sort -rn | awk '{ printf "%s=%d ", $2, $1 }'
}

CLOCK_TICKS="$(getconf CLK_TCK)"
CPUS="$(nproc --all)"
if [[ "$CPUS" -lt 2 ]]; then
    log "warning: only $CPUS CPU; the agent and the helpers share it"
    AGENT_CPU=0
    HELPER_CPU=0
fi
command -v taskset >/dev/null || die "taskset (util-linux) is needed to limit the agent to one CPU"
# Arrays, not functions: `taskset … cmd &` must leave the command's own pid in $!
# (taskset execs it), where a function would leave a subshell's.
ON_AGENT_CPU=(taskset -c "$AGENT_CPU")
ON_HELPER_CPU=(taskset -c "$HELPER_CPU")

# ---- rsyslog ------------------------------------------------------------------------
RSYSLOGD=""
RSYSLOG_NOTE=""
if [[ "$SKIP_RSYSLOG" == 0 ]]; then
    RSYSLOGD="$(command -v rsyslogd || true)"
    [[ -z "$RSYSLOGD" && -x /usr/sbin/rsyslogd ]] && RSYSLOGD=/usr/sbin/rsyslogd
    if [[ -z "$RSYSLOGD" ]]; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
            log "installing rsyslog (apt-get install -y rsyslog)"
            if ! timeout 600 apt-get install -y rsyslog >"$WORK/apt.log" 2>&1; then
                log "apt-get install failed; running apt-get update first"
                timeout 600 apt-get update >>"$WORK/apt.log" 2>&1 || true
                timeout 600 apt-get install -y rsyslog >>"$WORK/apt.log" 2>&1 || true
            fi
            RSYSLOGD="$(command -v rsyslogd || true)"
            [[ -z "$RSYSLOGD" && -x /usr/sbin/rsyslogd ]] && RSYSLOGD=/usr/sbin/rsyslogd
        fi
        [[ -n "$RSYSLOGD" ]] || RSYSLOG_NOTE="rsyslogd not installed and could not be installed (see apt log); comparison skipped"
    fi
else
    RSYSLOG_NOTE="skipped (--skip-rsyslog)"
fi
[[ -z "$RSYSLOG_NOTE" ]] || log "rsyslog: $RSYSLOG_NOTE"
RSYSLOG_VERSION=""
[[ -n "$RSYSLOGD" ]] && RSYSLOG_VERSION="$("$RSYSLOGD" -v 2>/dev/null | head -n 1 | awk '{ print $2 }')"

# ---- build and binary size -----------------------------------------------------------
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
BIN="$TARGET_DIR/release"
if [[ "$BUILD" == 1 ]]; then
    log "building the agent (image profile) and the helpers (release)"
    timeout 1800 cargo build --profile image -p epitaph-agent >&2 \
        || die "cargo build of epitaph-agent failed (or --no-build to measure the last build)"
    # The helpers live in a crate that depends on the server: when only the server does
    # not build, the helpers of the last build still measure the agent.
    if ! timeout 1800 cargo build --release -p epitaph-benches --bin null-receiver --bin line-writer >&2; then
        [[ -x "$BIN/null-receiver" && -x "$BIN/line-writer" ]] || die "cargo build of the helpers failed"
        log "warning: the helpers did not build; using the ones from the last build"
    fi
fi
# Which agent is measured: the commit, and whether agent/ differed from it.
AGENT_VERSION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git status --porcelain -- agent proto 2>/dev/null)" ]] && AGENT_VERSION="$AGENT_VERSION + uncommitted agent/ changes"
for binary in null-receiver line-writer; do
    [[ -x "$BIN/$binary" ]] || die "$BIN/$binary was not built"
done
AGENT_BUILT="$TARGET_DIR/image/epitaph-agent"
if [[ -n "$AGENT_SOURCE" ]]; then
    AGENT_BUILT="$AGENT_SOURCE"
    AGENT_VERSION="$AGENT_SOURCE (--agent-bin)"
fi
[[ -x "$AGENT_BUILT" ]] || die "$AGENT_BUILT was not built"
AGENT_BYTES="$(stat -c %s "$AGENT_BUILT")"
STRIPPED_BYTES=""
if command -v strip >/dev/null; then
    mkdir -p "$WORK/stripped"
    cp "$AGENT_BUILT" "$WORK/stripped/epitaph-agent"
    strip "$WORK/stripped/epitaph-agent"
    STRIPPED_BYTES="$(stat -c %s "$WORK/stripped/epitaph-agent")"
else
    log "strip (binutils) is missing: no stripped size"
fi
# The agent that runs is the stripped copy when there is one: what an image would ship.
AGENT_BIN="$AGENT_BUILT"
[[ -n "$STRIPPED_BYTES" ]] && AGENT_BIN="$WORK/stripped/epitaph-agent"

# From here this shell, its polling and every helper run on the helper CPU; only the
# agent and rsyslogd are moved to the agent CPU, so nothing else is billed to it.
taskset -cp "$HELPER_CPU" $$ >/dev/null || die "cannot pin this script to CPU $HELPER_CPU"

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- null receiver -------------------------------------------------------------------
COUNTS="$WORK/counts.json"
"${ON_HELPER_CPU[@]}" "$BIN/null-receiver" --grpc-addr 127.0.0.1:0 --tcp-sink 127.0.0.1:0 \
    --report "$COUNTS" --report-every 0.05 >"$WORK/receiver.out" 2>"$WORK/receiver.err" &
RECEIVER_PID=$!
STARTED_PIDS+=("$RECEIVER_PID")
GRPC_ADDR=""
TCP_ADDR=""
for _ in $(seq 1 100); do
    if read -r line 2>/dev/null <"$WORK/receiver.out" && [[ "$line" == listening* ]]; then
        GRPC_ADDR="$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' <<<"$line")"
        TCP_ADDR="$(sed -n 's/.*tcp=\([^ ]*\).*/\1/p' <<<"$line")"
        break
    fi
    is_running "$RECEIVER_PID" || die "null-receiver exited: $(tail -n 5 "$WORK/receiver.err")"
    sleep 0.1
done
[[ -n "$GRPC_ADDR" && -n "$TCP_ADDR" ]] || die "null-receiver did not print its addresses within 10 s"
for _ in $(seq 1 100); do [[ -s "$COUNTS" ]] && break; sleep 0.05; done
log "null-receiver listening grpc=$GRPC_ADDR tcp=$TCP_ADDR"
records() { json_number "$COUNTS" log_records; }
tcp_lines() { json_number "$COUNTS" tcp_lines; }

# ---- the agent -----------------------------------------------------------------------
cat >"$WORK/identity.toml" <<'EOF'
service = "bench"
image_name = "bench-golden"
image_version = "2026.11.26-bench"
image_id = "ami-0bench"
[attributes]
"deployment.environment.name" = "bench"
EOF

# write_agent_config NAME FILE READ_FROM_BEGINNING: config and state dir under $WORK/NAME.
write_agent_config() {
    local name="$1" file="$2" from_beginning="$3" extra
    mkdir -p "$WORK/$name/state"
    {
        echo "server = \"http://$GRPC_ADDR\""
        echo "state_dir = \"$WORK/$name/state\""
        echo "identity_file = \"$WORK/identity.toml\""
        echo "files = [\"$file\"]"
        echo "read_from_beginning = $from_beginning"
        # No identity from outside the run: no cloud metadata probe (loopback only), no
        # user-data file of the machine's.
        echo "metadata = \"none\""
        echo "instance_identity_file = \"$WORK/instance.env\""
        for extra in "${AGENT_CONFIG_EXTRA[@]}"; do echo "$extra"; done
    } >"$WORK/$name/agent.toml"
}

# start_agent NAME: sets AGENT_PID; the agent runs on the agent CPU only.
AGENT_PID=""
start_agent() {
    local name="$1"
    env "${AGENT_ENV[@]}" "${ON_AGENT_CPU[@]}" "$AGENT_BIN" --config "$WORK/$name/agent.toml" >"$WORK/$name/agent.out" 2>"$WORK/$name/agent.log" &
    AGENT_PID=$!
    STARTED_PIDS+=("$AGENT_PID")
}
agent_alive() {
    is_running "$AGENT_PID" || die "epitaph-agent exited: $(tail -n 5 "$WORK/$1/agent.log")"
}

# ---- steady load: idle, 1,000 and 10,000 lines/s, idle ----------------------------------
STEADY_LOG="$WORK/steady/app.log"
write_agent_config steady "$STEADY_LOG" false
: >"$STEADY_LOG"
log "steady: starting the agent on CPU $AGENT_CPU, tailing an empty file"
start_agent steady
HELLOS_BEFORE="$(json_number "$COUNTS" hellos)"
for _ in $(seq 1 100); do
    [[ "$(json_number "$COUNTS" hellos)" -gt "$HELLOS_BEFORE" ]] && break
    agent_alive steady
    sleep 0.1
done
[[ "$(json_number "$COUNTS" hellos)" -gt "$HELLOS_BEFORE" ]] || log "warning: no hello from the agent within 10 s"
AGENT_THREADS="$(status_kib "$AGENT_PID" Threads)"

# measure_idle LABEL: CPU % over IDLE_SECONDS with no new lines, then VmRSS/VmHWM.
measure_idle() {
    local label="$1" ticks_before started ticks_after ended
    sleep 2
    agent_alive steady
    ticks_before="$(cpu_ticks "$AGENT_PID")"
    started="$(now)"
    sleep "$IDLE_SECONDS"
    agent_alive steady
    ticks_after="$(cpu_ticks "$AGENT_PID")"
    ended="$(now)"
    printf -v "IDLE_${label}_RSS" '%s' "$(status_kib "$AGENT_PID" VmRSS)"
    printf -v "IDLE_${label}_HWM" '%s' "$(status_kib "$AGENT_PID" VmHWM)"
    printf -v "IDLE_${label}_CPU" '%s' "$(calc "100 * ($ticks_after - $ticks_before) / $CLOCK_TICKS / ($ended - $started)")"
}

# measure_rate RATE: appends at RATE lines/s for RATE_SECONDS; CPU % of one core over the
# writer's window, VmRSS sampled every 0.5 s, VmHWM after; then checks every line arrived.
measure_rate() {
    local rate="$1" base ticks_before started writer ticks_after ended rss max_rss=0 sum_rss=0 samples=0 written expected
    base="$(records)"
    ticks_before="$(cpu_ticks "$AGENT_PID")"
    started="$(now)"
    "${ON_HELPER_CPU[@]}" "$BIN/line-writer" --file "$STEADY_LOG" --rate "$rate" --duration "$RATE_SECONDS" \
        --line-bytes "$LINE_BYTES" >"$WORK/steady/writer-$rate.json" 2>"$WORK/steady/writer-$rate.err" &
    writer=$!
    STARTED_PIDS+=("$writer")
    for _ in $(seq 1 $(((RATE_SECONDS + 30) * 2))); do
        is_running "$writer" || break
        agent_alive steady
        rss="$(status_kib "$AGENT_PID" VmRSS)"
        max_rss=$((rss > max_rss ? rss : max_rss))
        sum_rss=$((sum_rss + rss))
        samples=$((samples + 1))
        sleep 0.5
    done
    is_running "$writer" && die "line-writer did not finish within $((RATE_SECONDS + 30)) s"
    wait "$writer" || die "line-writer failed: $(tail -n 5 "$WORK/steady/writer-$rate.err")"
    forget_pid "$writer"
    ticks_after="$(cpu_ticks "$AGENT_PID")"
    ended="$(now)"
    written="$(json_number "$WORK/steady/writer-$rate.json" lines)"
    expected=$((base + written))
    for _ in $(seq 1 300); do [[ "$(records)" -ge "$expected" ]] && break; sleep 0.05; done
    printf -v "RATE_${rate}_CPU" '%s' "$(calc "100 * ($ticks_after - $ticks_before) / $CLOCK_TICKS / ($ended - $started)")"
    printf -v "RATE_${rate}_US_PER_LINE" '%s' "$(calc "1e6 * ($ticks_after - $ticks_before) / $CLOCK_TICKS / $written")"
    printf -v "RATE_${rate}_RSS_MAX" '%s' "$max_rss"
    printf -v "RATE_${rate}_RSS_MEAN" '%s' "$(calc "$sum_rss / ($samples > 0 ? $samples : 1)")"
    printf -v "RATE_${rate}_HWM" '%s' "$(status_kib "$AGENT_PID" VmHWM)"
    printf -v "RATE_${rate}_WRITTEN" '%s' "$written"
    printf -v "RATE_${rate}_DELIVERED" '%s' "$(($(records) - base))"
    printf -v "RATE_${rate}_ACTUAL" '%s' "$(json_number "$WORK/steady/writer-$rate.json" lines_per_second)"
}

log "steady: idle for $IDLE_SECONDS s"
measure_idle START
for rate in 1000 10000; do
    log "steady: $rate lines/s for $RATE_SECONDS s"
    measure_rate "$rate"
done
log "steady: idle again for $IDLE_SECONDS s"
measure_idle AFTER
STEADY_THREAD_TICKS="$(thread_ticks "$AGENT_PID")"
stop_process "$AGENT_PID" 20
grep -q "all batches delivered" "$WORK/steady/agent.log" || log "warning: the steady agent did not report a clean shutdown"

# ---- throughput: agent and rsyslog on the same pre-written file ------------------------
BIG_LOG="$WORK/throughput.log"
log "throughput: writing $LINES lines of $LINE_BYTES bytes to $BIG_LOG"
"${ON_HELPER_CPU[@]}" "$BIN/line-writer" --file "$BIG_LOG" --lines "$LINES" --line-bytes "$LINE_BYTES" \
    >"$WORK/big-writer.json" 2>"$WORK/big-writer.err" || die "line-writer failed: $(tail -n 5 "$WORK/big-writer.err")"
BIG_BYTES="$(stat -c %s "$BIG_LOG")"
# Written back now, so that writeback does not run during the timed reads. Both readers
# then read the file from the page cache.
timeout 120 sync "$BIG_LOG" || log "warning: sync of $BIG_LOG did not finish"
# Generous: 20,000 lines/s would be a very slow agent.
DEADLINE_SECONDS=$((LINES / 20000 + 60))

# run_agent_round R: a fresh agent (new state dir) reads the whole file from its start.
run_agent_round() {
    local round="$1" name="throughput-agent-$1" base started ticks hwm elapsed delivered
    write_agent_config "$name" "$BIG_LOG" true
    base="$(records)"
    started="$(now)"
    start_agent "$name"
    for _ in $(seq 1 $((DEADLINE_SECONDS * 20))); do
        [[ "$(records)" -ge $((base + LINES)) ]] && break
        agent_alive "$name"
        sleep 0.05
    done
    ticks="$(cpu_ticks "$AGENT_PID")"
    hwm="$(status_kib "$AGENT_PID" VmHWM)"
    delivered=$(($(records) - base))
    [[ "$delivered" -ge "$LINES" ]] || die "agent round $round: only $delivered of $LINES lines acked within $DEADLINE_SECONDS s"
    # Seconds from the agent's start to the ack of the last line (computed inside awk:
    # epoch nanoseconds lose their digits when printed as a 6-digit float).
    elapsed="$(awk -v last="$(json_number "$COUNTS" last_export_unix_nanos)" -v start="$started" 'BEGIN { printf "%.6f", last / 1e9 - start }')"
    AGENT_THREAD_TICKS="$(thread_ticks "$AGENT_PID")"
    stop_process "$AGENT_PID" 20
    AGENT_LPS+=("$(calc "$LINES / $elapsed")")
    AGENT_US+=("$(calc "1e6 * $ticks / $CLOCK_TICKS / $LINES")")
    AGENT_CORES+=("$(calc "$ticks / $CLOCK_TICKS / $elapsed")")
    AGENT_HWM+=("$hwm")
    AGENT_DELIVERED+=("$delivered")
    log "agent round $round: ${AGENT_LPS[-1]} lines/s, ${AGENT_US[-1]} µs CPU/line, ${AGENT_CORES[-1]} of a core, peak RSS $(mib "$hwm") MiB, threads: $AGENT_THREAD_TICKS"
}

# run_rsyslog_round R: rsyslogd of its own (config, pid file, work dir), imfile from the
# start of the file, omfwd over TCP to the sink, in rsyslog's default forwarding format.
run_rsyslog_round() {
    local round="$1" dir="$WORK/throughput-rsyslog-$1" base started pid ticks hwm elapsed delivered
    mkdir -p "$dir/work"
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work")
module(load="imfile")
input(type="imfile" file="$BIG_LOG" tag="app:" ruleset="forward")
ruleset(name="forward") {
    action(type="omfwd" target="${TCP_ADDR%:*}" port="${TCP_ADDR##*:}" protocol="tcp")
}
EOF
    base="$(tcp_lines)"
    started="$(now)"
    "${ON_AGENT_CPU[@]}" "$RSYSLOGD" -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" >"$dir/rsyslogd.out" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    for _ in $(seq 1 $((DEADLINE_SECONDS * 20))); do
        [[ "$(tcp_lines)" -ge $((base + LINES)) ]] && break
        is_running "$pid" || die "rsyslogd exited: $(tail -n 5 "$dir/rsyslogd.out")"
        sleep 0.05
    done
    ticks="$(cpu_ticks "$pid")"
    hwm="$(status_kib "$pid" VmHWM)"
    delivered=$(($(tcp_lines) - base))
    [[ "$delivered" -ge "$LINES" ]] || die "rsyslog round $round: only $delivered of $LINES lines forwarded within $DEADLINE_SECONDS s"
    elapsed="$(awk -v last="$(json_number "$COUNTS" last_tcp_unix_nanos)" -v start="$started" 'BEGIN { printf "%.6f", last / 1e9 - start }')"
    stop_process "$pid" 10
    RSYSLOG_LPS+=("$(calc "$LINES / $elapsed")")
    RSYSLOG_US+=("$(calc "1e6 * $ticks / $CLOCK_TICKS / $LINES")")
    RSYSLOG_CORES+=("$(calc "$ticks / $CLOCK_TICKS / $elapsed")")
    RSYSLOG_HWM+=("$hwm")
    log "rsyslog round $round: ${RSYSLOG_LPS[-1]} lines/s, ${RSYSLOG_US[-1]} µs CPU/line, ${RSYSLOG_CORES[-1]} of a core, peak RSS $(mib "$hwm") MiB"
}

AGENT_LPS=(); AGENT_US=(); AGENT_CORES=(); AGENT_HWM=(); AGENT_DELIVERED=()
RSYSLOG_LPS=(); RSYSLOG_US=(); RSYSLOG_CORES=(); RSYSLOG_HWM=()
for round in $(seq 1 "$ROUNDS"); do
    # Alternate who goes first, so that neither always meets the same background load.
    if [[ $((round % 2)) == 1 || -z "$RSYSLOGD" ]]; then
        run_agent_round "$round"
        [[ -n "$RSYSLOGD" ]] && run_rsyslog_round "$round"
    else
        run_rsyslog_round "$round"
        run_agent_round "$round"
    fi
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- summary -------------------------------------------------------------------------
AGENT_LPS_MEDIAN="$(median "${AGENT_LPS[@]}")"
AGENT_US_MEDIAN="$(median "${AGENT_US[@]}")"
AGENT_HWM_MEDIAN="$(median "${AGENT_HWM[@]}")"
if [[ -n "$RSYSLOGD" ]]; then
    RSYSLOG_LPS_MEDIAN="$(median "${RSYSLOG_LPS[@]}")"
    RSYSLOG_US_MEDIAN="$(median "${RSYSLOG_US[@]}")"
    RSYSLOG_HWM_MEDIAN="$(median "${RSYSLOG_HWM[@]}")"
fi

# verdict MEASURED OP TARGET: "pass" or "MISS".
verdict() { awk -v m="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (m <= t) : (op == ">=") ? (m >= t) : (op == "<") ? (m < t) : (m > t); print ok ? "pass" : "MISS" }'; }
row() { printf '%-46s %-26s %-22s %s\n' "$@"; }
list() { local IFS=', '; echo "$*"; }
lps_list() { local v out=(); for v in "$@"; do out+=("$(fmt '%.0f' "$v")"); done; list "${out[@]}"; }
us_list() { local v out=(); for v in "$@"; do out+=("$(fmt '%.2f' "$v")"); done; list "${out[@]}"; }

SUMMARY="$WORK/summary.txt"
{
echo
echo "== Epitaph agent footprint: $LINE_BYTES-byte lines, agent on CPU $AGENT_CPU of $CPUS ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), helpers on CPU $HELPER_CPU =="
echo "agent at $AGENT_VERSION, binary built $(date -u -r "$AGENT_BUILT" '+%Y-%m-%d %H:%M UTC')${AGENT_CONFIG_EXTRA[*]:+, config: ${AGENT_CONFIG_EXTRA[*]}}${AGENT_ENV[*]:+, env: ${AGENT_ENV[*]}}"
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), load average before $LOAD_BEFORE, after $LOAD_AFTER; agent threads at start: $AGENT_THREADS"
row "figure" "measured" "target" "result"
if [[ -n "$STRIPPED_BYTES" ]]; then
    row "release binary, stripped" "$(fmt '%.2f' "$(calc "$STRIPPED_BYTES / 1048576")") MiB" "<= 12 MiB" "$(verdict "$STRIPPED_BYTES" "<=" $((12 * 1048576)))"
else
    row "release binary, stripped" "(strip missing)" "<= 12 MiB" "-"
fi
row "release binary, as built" "$(fmt '%.2f' "$(calc "$AGENT_BYTES / 1048576")") MiB" "" ""
row "idle RSS (VmRSS, $IDLE_SECONDS s without lines)" "$(mib "$IDLE_START_RSS") MiB" "<= 8 MiB" "$(verdict "$IDLE_START_RSS" "<=" 8192)"
row "idle peak RSS (VmHWM since start)" "$(mib "$IDLE_START_HWM") MiB" "" ""
row "idle CPU" "$(fmt '%.2f' "$IDLE_START_CPU") % of a core" "" ""
row "RSS at 1,000 lines/s (max sampled / mean)" "$(mib "$RATE_1000_RSS_MAX") / $(mib "$RATE_1000_RSS_MEAN") MiB" "" ""
row "CPU at 1,000 lines/s" "$(fmt '%.2f' "$RATE_1000_CPU") % ($(fmt '%.1f' "$RATE_1000_US_PER_LINE") µs/line)" "<= 1 %" "$(verdict "$RATE_1000_CPU" "<=" 1)"
row "RSS at 10,000 lines/s (max sampled / mean)" "$(mib "$RATE_10000_RSS_MAX") / $(mib "$RATE_10000_RSS_MEAN") MiB" "" ""
row "peak RSS up to end of 10,000 lines/s (VmHWM)" "$(mib "$RATE_10000_HWM") MiB" "<= 20 MiB" "$(verdict "$RATE_10000_HWM" "<=" 20480)"
row "CPU at 10,000 lines/s" "$(fmt '%.2f' "$RATE_10000_CPU") % ($(fmt '%.1f' "$RATE_10000_US_PER_LINE") µs/line)" "<= 5 %" "$(verdict "$RATE_10000_CPU" "<=" 5)"
row "idle RSS after the load (VmRSS)" "$(mib "$IDLE_AFTER_RSS") MiB" "" ""
row "idle CPU after the load" "$(fmt '%.2f' "$IDLE_AFTER_CPU") % of a core" "" ""
row "throughput file->acked, median of $ROUNDS" "$(fmt '%.0f' "$AGENT_LPS_MEDIAN") lines/s" ">= 250,000 lines/s" "$(verdict "$AGENT_LPS_MEDIAN" ">=" 250000)"
row "  CPU per line, median" "$(fmt '%.2f' "$AGENT_US_MEDIAN") µs" "" ""
row "  peak RSS (VmHWM), median" "$(mib "$AGENT_HWM_MEDIAN") MiB" "" ""
if [[ -n "$RSYSLOGD" ]]; then
    row "rsyslog $RSYSLOG_VERSION file->TCP sink, median" "$(fmt '%.0f' "$RSYSLOG_LPS_MEDIAN") lines/s" "" ""
    row "  CPU per line, median" "$(fmt '%.2f' "$RSYSLOG_US_MEDIAN") µs" "" ""
    row "  peak RSS (VmHWM), median" "$(mib "$RSYSLOG_HWM_MEDIAN") MiB" "" ""
    row "agent vs rsyslog, lines/s" "$(fmt '%.2f' "$(calc "$AGENT_LPS_MEDIAN / $RSYSLOG_LPS_MEDIAN")") x" "> 1 x" "$(verdict "$AGENT_LPS_MEDIAN" ">" "$RSYSLOG_LPS_MEDIAN")"
    row "agent vs rsyslog, CPU per line" "$(fmt '%.2f' "$(calc "$AGENT_US_MEDIAN / $RSYSLOG_US_MEDIAN")") x" "< 1 x" "$(verdict "$AGENT_US_MEDIAN" "<" "$RSYSLOG_US_MEDIAN")"
else
    row "rsyslog comparison" "$RSYSLOG_NOTE" "" "-"
fi
echo
echo "throughput rounds ($LINES lines, $(fmt '%.0f' "$(calc "$BIG_BYTES / 1e6")") MB): agent $(lps_list "${AGENT_LPS[@]}") lines/s, $(us_list "${AGENT_US[@]}") µs/line, $(us_list "${AGENT_CORES[@]}") cores"
[[ -n "$RSYSLOGD" ]] && echo "                 rsyslog $(lps_list "${RSYSLOG_LPS[@]}") lines/s, $(us_list "${RSYSLOG_US[@]}") µs/line, $(us_list "${RSYSLOG_CORES[@]}") cores"
echo "delivered: 1,000 lines/s $RATE_1000_DELIVERED of $RATE_1000_WRITTEN (writer at $(fmt '%.0f' "$RATE_1000_ACTUAL")/s); 10,000 lines/s $RATE_10000_DELIVERED of $RATE_10000_WRITTEN (writer at $(fmt '%.0f' "$RATE_10000_ACTUAL")/s); throughput $(list "${AGENT_DELIVERED[@]}") of $LINES"
echo "agent CPU by thread, steady run (ticks of 1/$CLOCK_TICKS s): $STEADY_THREAD_TICKS"
echo "agent CPU by thread, last throughput round: $AGENT_THREAD_TICKS"
} | tee "$SUMMARY"
