#!/usr/bin/env bash
# Epitaph's ingest benchmark: the server against the bare-tantivy ceiling, on one corpus.
#
#   1. builds the release binaries;
#   2. indexes N lines with bare tantivy (bare-tantivy) for the ceiling;
#   3. starts epitaph-server on loopback ports the OS picks, in a temporary data dir;
#   4. sends the same N lines as fast as the server acks them (epitaph-loadgen);
#   5. waits until they are searchable and the splits stop growing, measures the splits;
#   6. sends again at half the sustained rate (sent to searchable), for the ack latency
#      at a load the server can keep up;
#   7. stops the server and runs the ceiling once more, so that the ratios use the mean of
#      two ceiling runs bracketing the server's (the machine's load drifts);
#   8. prints a summary with the ratios to the ceiling, cleans up.
#
# Usage: benches/ingest.sh [--lines N] [--connections N] [--batch-size N] [--seed N]
#                          [--paced-lines N] [--keep]
# Needs only bash, coreutils and awk (curl is used when present). Every step is bounded
# by `timeout`; the whole run with the defaults takes a few minutes on 2 cores.
set -euo pipefail

LINES=1000000
CONNECTIONS=4
BATCH_SIZE=1000
SEED=1
PACED_LINES=""
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lines) LINES="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --batch-size) BATCH_SIZE="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --paced-lines) PACED_LINES="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "ingest.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
PACED_LINES="${PACED_LINES:-$((LINES / 2))}"

log() { echo "[ingest.sh] $*" >&2; }
die() { echo "[ingest.sh] error: $*" >&2; exit 1; }

WORKSPACE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WORKSPACE"

WORK="$(mktemp -d -t epitaph-ingest-XXXXXX)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "$KEEP" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# First number after "key": in a one-line JSON object (no jq needed).
json_number() { grep -o "\"$2\":-\?[0-9.eE+-]*" "$1" | head -n 1 | cut -d: -f2; }
# awk arithmetic for floats: calc "2 * 3.5"
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
fmt() { awk -v value="$2" "BEGIN { printf \"$1\", value }"; }

# GET http://$1$2, body on stdout; fails unless the status is 200.
http_get() {
    local address="$1" path="$2"
    if command -v curl >/dev/null 2>&1; then
        curl -sf --max-time 5 "http://$address$path"
        return
    fi
    local host="${address%:*}" port="${address##*:}" response
    exec 3<>"/dev/tcp/$host/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$address" >&3
    response="$(timeout 5 cat <&3)" || { exec 3<&-; return 1; }
    exec 3<&-
    [[ "$response" == "HTTP/1."?" 200"* ]] || return 1
    printf '%s' "${response#*$'\r\n\r\n'}"
}

dir_bytes() { if [[ -d "$1" ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

log "building release binaries"
timeout 1800 cargo build --release -p epitaph-server -p epitaph-benches >&2
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
BIN="$TARGET_DIR/release"
for binary in epitaph-server epitaph-loadgen bare-tantivy; do
    [[ -x "$BIN/$binary" ]] || die "$BIN/$binary was not built"
done
CORPUS_ARGS=(--lines "$LINES" --batch-size "$BATCH_SIZE" --seed "$SEED")

log "bare tantivy: indexing $LINES lines"
timeout 900 "$BIN/bare-tantivy" "${CORPUS_ARGS[@]}" --temp-dir "$WORK" --json >"$WORK/bare.json" 2>"$WORK/bare.err" \
    || die "bare-tantivy failed: $(tail -n 5 "$WORK/bare.err")"
BARE_DOCS_PER_S="$(json_number "$WORK/bare.json" docs_per_second)"
BARE_MB_PER_S="$(json_number "$WORK/bare.json" megabytes_per_second)"
BARE_BYTES="$(json_number "$WORK/bare.json" index_bytes)"
RAW_BYTES="$(json_number "$WORK/bare.json" raw_body_bytes)"

log "starting epitaph-server in $WORK/data"
mkdir -p "$WORK/data"
"$BIN/epitaph-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
GRPC_ADDR=""
HTTP_ADDR=""
for _ in $(seq 1 300); do
    if read -r line 2>/dev/null <"$WORK/server.out" && [[ "$line" == listening* ]]; then
        GRPC_ADDR="$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' <<<"$line")"
        HTTP_ADDR="$(sed -n 's/.*http=\([^ ]*\).*/\1/p' <<<"$line")"
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "epitaph-server exited: $(tail -n 5 "$WORK/server.log")"
    sleep 0.1
done
[[ -n "$GRPC_ADDR" && -n "$HTTP_ADDR" ]] || die "epitaph-server did not print its addresses within 30 s"
log "server listening grpc=$GRPC_ADDR http=$HTTP_ADDR"

# Waits until $1 documents are searchable and the splits stop growing; sets SEARCHABLE_AFTER
# (seconds from the call) and SPLIT_BYTES.
wait_until_indexed() {
    local expected="$1" started now documents stats previous=-1 stable=0 bytes
    started="$(date +%s.%N)"
    SEARCHABLE_AFTER=""
    for _ in $(seq 1 1200); do
        if http_get "$HTTP_ADDR" "/api/v1/search?q=*&limit=1" >/dev/null 2>&1; then
            stats="$(http_get "$HTTP_ADDR" /api/v1/stats 2>/dev/null || true)"
            documents="$(grep -o '"documents":[0-9]*' <<<"$stats" | head -n 1 | cut -d: -f2 || true)"
            if [[ -z "$documents" || "$documents" -ge "$expected" ]]; then
                now="$(date +%s.%N)"
                SEARCHABLE_AFTER="$(calc "$now - $started")"
                [[ -n "$documents" ]] || log "no document count in /api/v1/stats; waiting for the splits to settle instead"
                break
            fi
        fi
        sleep 0.1
    done
    [[ -n "$SEARCHABLE_AFTER" ]] || die "$expected documents not searchable after 120 s: $(tail -n 5 "$WORK/server.log")"
    # The splits are done when their size has not changed for 3 s (30 polls).
    for _ in $(seq 1 1200); do
        bytes="$(dir_bytes "$WORK/data/splits")"
        if [[ "$bytes" == "$previous" ]]; then
            stable=$((stable + 1))
            [[ "$stable" -ge 30 ]] && break
        else
            stable=0
            previous="$bytes"
        fi
        sleep 0.1
    done
    SPLIT_BYTES="$(dir_bytes "$WORK/data/splits")"
}

CLOCK_TICKS="$(getconf CLK_TCK)"
log "epitaph: sending $LINES lines at the highest rate the server acks"
TICKS_BEFORE="$(cpu_ticks "$SERVER_PID")"
timeout 900 "$BIN/epitaph-loadgen" --endpoint "http://$GRPC_ADDR" --connections "$CONNECTIONS" "${CORPUS_ARGS[@]}" --json \
    >"$WORK/max.json" 2>"$WORK/max.err" || die "loadgen failed: $(tail -n 5 "$WORK/max.err")"
TICKS_AFTER="$(cpu_ticks "$SERVER_PID")"
MAX_LINES_PER_S="$(json_number "$WORK/max.json" lines_per_second)"
MAX_MB_PER_S="$(json_number "$WORK/max.json" megabytes_per_second)"
MAX_ELAPSED="$(json_number "$WORK/max.json" elapsed_seconds)"
MAX_ACKED="$(json_number "$WORK/max.json" lines)"
SERVER_CORES="$(calc "($TICKS_AFTER - $TICKS_BEFORE) / $CLOCK_TICKS / $MAX_ELAPSED")"
[[ "$MAX_ACKED" -ge "$LINES" ]] || log "warning: only $MAX_ACKED of $LINES lines were acked"

log "waiting until the $MAX_ACKED lines are searchable"
wait_until_indexed "$MAX_ACKED"
MAX_SEARCHABLE_AFTER="$SEARCHABLE_AFTER"
MAX_SPLIT_BYTES="$SPLIT_BYTES"
WAL_BYTES="$(dir_bytes "$WORK/data/wal")"

# The sustained rate counts until the lines are searchable: acks alone can run ahead of
# the indexer for as long as the WAL buffers, which no server can keep up.
SUSTAINED_LINES_PER_S="$(calc "$MAX_ACKED / ($MAX_ELAPSED + $MAX_SEARCHABLE_AFTER)")"
PACED_RATE="$(calc "$SUSTAINED_LINES_PER_S / 2")"
log "epitaph: sending $PACED_LINES lines at $PACED_RATE lines/s (half the sustained maximum)"
timeout 900 "$BIN/epitaph-loadgen" --endpoint "http://$GRPC_ADDR" --connections "$CONNECTIONS" \
    --lines "$PACED_LINES" --batch-size "$BATCH_SIZE" --seed "$((SEED + 1))" --rate "$PACED_RATE" --json \
    >"$WORK/paced.json" 2>"$WORK/paced.err" || die "paced loadgen failed: $(tail -n 5 "$WORK/paced.err")"
PACED_ACKED="$(json_number "$WORK/paced.json" lines)"
wait_until_indexed "$((MAX_ACKED + PACED_ACKED))"
PEAK_RSS_KIB="$(peak_rss_kib "$SERVER_PID")"
kill -TERM "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# The ceiling again, after the server runs: on a shared machine the load changes from
# minute to minute, so the ratios use the mean of the two ceiling runs that bracket it.
log "bare tantivy again: indexing $LINES lines"
timeout 900 "$BIN/bare-tantivy" "${CORPUS_ARGS[@]}" --temp-dir "$WORK" --json >"$WORK/bare2.json" 2>"$WORK/bare2.err" \
    || die "bare-tantivy failed: $(tail -n 5 "$WORK/bare2.err")"
BARE_FIRST_DOCS_PER_S="$BARE_DOCS_PER_S"
BARE_SECOND_DOCS_PER_S="$(json_number "$WORK/bare2.json" docs_per_second)"
BARE_DOCS_PER_S="$(calc "($BARE_FIRST_DOCS_PER_S + $BARE_SECOND_DOCS_PER_S) / 2")"

errors_of() { grep -o '"errors":{[^}]*}' "$1" | sed 's/"errors"://'; }
echo
echo "== Epitaph ingest benchmark: $LINES lines (~$(calc "$RAW_BYTES / $LINES") B each), $CONNECTIONS connections, batches of $BATCH_SIZE, seed $SEED =="
printf '%-22s %s\n' "bare tantivy:" "$(fmt '%.0f' "$BARE_DOCS_PER_S") docs/s (runs before and after: $(fmt '%.0f' "$BARE_FIRST_DOCS_PER_S"), $(fmt '%.0f' "$BARE_SECOND_DOCS_PER_S")), $(fmt '%.1f' "$BARE_MB_PER_S") MB/s, index $(fmt '%.1f' "$(calc "$BARE_BYTES / 1e6")") MB"
printf '%-22s %s\n' "epitaph at max rate:" "$(fmt '%.0f' "$MAX_LINES_PER_S") lines/s, $(fmt '%.1f' "$MAX_MB_PER_S") MB/s, ack p50 $(fmt '%.1f' "$(json_number "$WORK/max.json" p50)") ms, p99 $(fmt '%.1f' "$(json_number "$WORK/max.json" p99)") ms, errors $(errors_of "$WORK/max.json")"
printf '%-22s %s\n' "epitaph at half rate:" "$(fmt '%.0f' "$(json_number "$WORK/paced.json" lines_per_second)") lines/s, ack p50 $(fmt '%.1f' "$(json_number "$WORK/paced.json" p50)") ms, p90 $(fmt '%.1f' "$(json_number "$WORK/paced.json" p90)") ms, p99 $(fmt '%.1f' "$(json_number "$WORK/paced.json" p99)") ms, max $(fmt '%.1f' "$(json_number "$WORK/paced.json" max)") ms, errors $(errors_of "$WORK/paced.json")"
printf '%-22s %s\n' "searchable:" "all lines $(fmt '%.1f' "$MAX_SEARCHABLE_AFTER") s after the last ack of the max-rate run: $(fmt '%.0f' "$SUSTAINED_LINES_PER_S") lines/s sustained (sent to searchable)"
printf '%-22s %s\n' "on disk:" "splits $(fmt '%.1f' "$(calc "$MAX_SPLIT_BYTES / 1e6")") MB after the max-rate run; wal $(fmt '%.1f' "$(calc "$WAL_BYTES / 1e6")") MB"
printf '%-22s %s\n' "server:" "$(fmt '%.2f' "$SERVER_CORES") cores during the max-rate run, peak RSS $(fmt '%.0f' "$(calc "$PEAK_RSS_KIB / 1024")") MiB"
printf '%-22s %s\n' "ratios:" "sustained/bare rate $(fmt '%.2f' "$(calc "$SUSTAINED_LINES_PER_S / $BARE_DOCS_PER_S")") (acked/bare $(fmt '%.2f' "$(calc "$MAX_LINES_PER_S / $BARE_DOCS_PER_S")")), split bytes/bare bytes $(fmt '%.2f' "$(calc "$MAX_SPLIT_BYTES / $BARE_BYTES")"), split bytes/raw bytes $(fmt '%.3f' "$(calc "$MAX_SPLIT_BYTES / $RAW_BYTES")") (bare: $(fmt '%.3f' "$(calc "$BARE_BYTES / $RAW_BYTES")"))"
