#!/usr/bin/env bash
# Epitaph's metrics benchmark, side by side with VictoriaMetrics, on one day of samples.
#
#   1. builds epitaph-server and metrics-load in release; installs the Debian package
#      victoria-metrics when it is missing (as root);
#   2. starts VictoriaMetrics and epitaph-server on loopback, each in a temp dir;
#   3. sends the same day of a request counter (1,000 series, see metrics-load) to
#      Epitaph over OTLP/gRPC, waits until every sample is queryable and every metric
#      split is sealed (`--split-window`, default 10s, given to the server as
#      `--metric-split-window`: sealed = committed, merges waited for, split.json
#      written) and its dir stops changing; with `--day-over` the day ends at the last
#      UTC midnight instead of now, so Epitaph compacts the day's splits into one (give
#      a short --split-window to get several);
#   4. then to VictoriaMetrics over /api/v1/import, waits until every sample is
#      queryable, then /internal/force_flush, /internal/force_merge and waits until no
#      merge is running and the storage dir stops changing;
#   5. measures bytes on disk of both storage dirs per sample;
#   6. times the 24-hour rate() by version on both (one warm-up, then --runs timed runs,
#      median) and checks both answers against what was sent;
#   7. prints a summary with the ratios and stops both servers.
#
# Usage: benches/metrics.sh [--connections N] [--step-seconds S] [--rounds-per-request N]
#                           [--seed N] [--runs N] [--split-window D] [--victoria-first]
#                           [--grpc-zstd] [--day-over] [--no-build] [--keep]
# Needs bash, coreutils, awk and curl. Every wait is bounded.
set -euo pipefail

CONNECTIONS=4
STEP_SECONDS=30
ROUNDS_PER_REQUEST=2
SEED=1
RUNS=5
SPLIT_WINDOW=10s
VICTORIA_FIRST=0
DAY_OVER=0
GRPC_ZSTD=0
BUILD=1
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --step-seconds) STEP_SECONDS="$2"; shift 2 ;;
        --rounds-per-request) ROUNDS_PER_REQUEST="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --split-window) SPLIT_WINDOW="$2"; shift 2 ;;
        --victoria-first) VICTORIA_FIRST=1; shift ;;
        --day-over) DAY_OVER=1; shift ;;
        --grpc-zstd) GRPC_ZSTD=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "metrics.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { echo "[metrics.sh] $*" >&2; }
die() { echo "[metrics.sh] error: $*" >&2; exit 1; }

WORKSPACE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WORKSPACE"
command -v curl >/dev/null || die "curl is needed"

WORK="$(mktemp -d -t epitaph-metrics-XXXXXX)"
SERVER_PID=""
VM_PID=""
stop_process() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_process "$SERVER_PID"
    stop_process "$VM_PID"
    if [[ "$KEEP" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# First number after "key": in a JSON text (no jq needed).
json_number() { grep -o "\"$2\": *-\?[0-9.eE+-]*" "$1" | head -n 1 | sed 's/.*: *//'; }
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
fmt() { awk -v value="$2" "BEGIN { printf \"$1\", value }"; }
# Files may vanish while du walks (a compaction removing the splits it replaced): du then
# complains and fails, but its total is still printed, and the caller waits for a settled
# directory anyway.
dir_bytes() { if [[ -d "$1" ]]; then { du -sb "$1" 2>/dev/null || true; } | cut -f1; else echo 0; fi; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
http_get() { curl -sf --max-time 30 "http://$1$2"; }
now_seconds() { date +%s.%N; }
CLOCK_TICKS="$(getconf CLK_TCK)"

# ---- VictoriaMetrics -----------------------------------------------------------------
VM_BIN="$(command -v victoria-metrics || true)"
if [[ -z "$VM_BIN" ]]; then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null || die "victoria-metrics is missing and cannot be installed here (needs root and apt-get)"
    log "installing victoria-metrics (apt-get install -y victoria-metrics)"
    if ! timeout 600 apt-get install -y victoria-metrics >"$WORK/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update first"
        timeout 600 apt-get update >>"$WORK/apt.log" 2>&1 || true
        timeout 600 apt-get install -y victoria-metrics >>"$WORK/apt.log" 2>&1 || true
    fi
    VM_BIN="$(command -v victoria-metrics || true)"
    [[ -n "$VM_BIN" ]] || die "victoria-metrics could not be installed (see $WORK/apt.log)"
fi
VM_VERSION="$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)"

# ---- build ---------------------------------------------------------------------------
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
BIN="$TARGET_DIR/release"
if [[ "$BUILD" == 1 ]]; then
    log "building release binaries"
    timeout 1800 cargo build --release -p epitaph-server --bin epitaph-server >&2
    timeout 1800 cargo build --release -p epitaph-benches --bin metrics-load >&2
fi
for binary in epitaph-server metrics-load; do
    [[ -x "$BIN/$binary" ]] || die "$BIN/$binary was not built"
done
# What was measured: the commit, whether the server's sources differ from it, and when
# the binary was built (the target dir may be shared with other builds).
SOURCE_NOTE="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- server query proto 2>/dev/null)" ]]; then
    SOURCE_NOTE="$SOURCE_NOTE + uncommitted changes in server/, query/ or proto/"
fi
SOURCE_NOTE="$SOURCE_NOTE; epitaph-server built $(date -u -r "$BIN/epitaph-server" '+%Y-%m-%d %H:%M:%S UTC')"

# The day ends now; every step uses the same end, so both servers get the same samples.
END_MS="$(( $(date +%s) * 1000 ))"
if [[ "$DAY_OVER" == 1 ]]; then
    # The day ends at the last UTC midnight: it is over, so Epitaph compacts its splits.
    END_MS="$(( $(date +%s) / 86400 * 86400 * 1000 ))"
fi
DATASET_ARGS=(--end-ms "$END_MS" --step-seconds "$STEP_SECONDS" --rounds-per-request "$ROUNDS_PER_REQUEST" --seed "$SEED")
"$BIN/metrics-load" plan "${DATASET_ARGS[@]}" >"$WORK/plan.json" || die "metrics-load plan failed"
SAMPLES="$(json_number "$WORK/plan.json" samples)"
SERIES="$(json_number "$WORK/plan.json" series)"
REQUESTS="$(json_number "$WORK/plan.json" requests)"
log "dataset: $SERIES series, $SAMPLES samples in $REQUESTS requests, day ending at $END_MS ms"

# A free loopback port for VictoriaMetrics (it does not report a port the OS picked).
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

start_victoria() {
    VM_ADDR="127.0.0.1:$(free_port)"
    mkdir -p "$WORK/vm"
    # -search.disableCache: queries are computed, not served from the response cache
    # (Epitaph has none), and the polls below see new samples at once.
    "$VM_BIN" -storageDataPath "$WORK/vm" -httpListenAddr "$VM_ADDR" -retentionPeriod 100y \
        -search.disableCache >"$WORK/vm.log" 2>&1 &
    VM_PID=$!
    for _ in $(seq 1 300); do
        [[ "$(http_get "$VM_ADDR" /health 2>/dev/null || true)" == OK ]] && { log "victoria-metrics $VM_VERSION listening on $VM_ADDR"; return; }
        kill -0 "$VM_PID" 2>/dev/null || die "victoria-metrics exited: $(tail -n 5 "$WORK/vm.log")"
        sleep 0.1
    done
    die "victoria-metrics did not answer /health within 30 s"
}

start_epitaph() {
    mkdir -p "$WORK/epitaph"
    "$BIN/epitaph-server" --data-dir "$WORK/epitaph" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
        --metric-split-window "$SPLIT_WINDOW" >"$WORK/server.out" 2>"$WORK/server.log" &
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
    log "epitaph-server listening grpc=$GRPC_ADDR http=$HTTP_ADDR (split window $SPLIT_WINDOW)"
}

# Waits until $1 (a directory) has not changed size for 3 s.
wait_until_stable() {
    local directory="$1" previous=-1 stable=0 bytes
    for _ in $(seq 1 600); do
        bytes="$(dir_bytes "$directory")"
        if [[ "$bytes" == "$previous" ]]; then
            stable=$((stable + 1))
            [[ "$stable" -ge 6 ]] && return
        else
            stable=0
            previous="$bytes"
        fi
        sleep 0.5
    done
    log "warning: $directory still changing after 300 s"
}

# The metrics part of /api/v1/stats: points, splits, sealed_splits.
epitaph_metric_stat() {
    { grep -o '"metrics":{[^}]*}' <<<"$1" | grep -o "\"$2\":[0-9]*" | cut -d: -f2; } || true
}

run_epitaph() {
    local zstd=() ticks_before ticks_after elapsed acked started stats points splits sealed unsealed
    [[ "$GRPC_ZSTD" == 1 ]] && zstd=(--grpc-zstd)
    log "epitaph: sending $SAMPLES samples over $CONNECTIONS gRPC connections"
    ticks_before="$(cpu_ticks "$SERVER_PID")"
    timeout 900 "$BIN/metrics-load" epitaph "${DATASET_ARGS[@]}" --grpc "$GRPC_ADDR" --connections "$CONNECTIONS" "${zstd[@]}" \
        >"$WORK/epitaph-load.json" 2>"$WORK/epitaph-load.err" || die "metrics-load epitaph failed: $(tail -n 5 "$WORK/epitaph-load.err")"
    ticks_after="$(cpu_ticks "$SERVER_PID")"
    elapsed="$(json_number "$WORK/epitaph-load.json" elapsed_seconds)"
    acked="$(json_number "$WORK/epitaph-load.json" samples)"
    [[ "$acked" == "$SAMPLES" ]] || log "warning: epitaph acked $acked of $SAMPLES samples"
    EPITAPH_RATE="$(json_number "$WORK/epitaph-load.json" samples_per_second)"
    EPITAPH_CORES="$(calc "($ticks_after - $ticks_before) / $CLOCK_TICKS / $elapsed")"
    started="$(now_seconds)"
    EPITAPH_QUERYABLE_AFTER=""
    for _ in $(seq 1 3000); do
        stats="$(http_get "$HTTP_ADDR" /api/v1/stats 2>/dev/null || true)"
        points="$(epitaph_metric_stat "$stats" points)"
        if [[ -n "$points" && "$points" -ge "$acked" ]]; then
            EPITAPH_QUERYABLE_AFTER="$(calc "$(now_seconds) - $started")"
            break
        fi
        sleep 0.1
    done
    [[ -n "$EPITAPH_QUERYABLE_AFTER" ]] || die "epitaph: $acked points not queryable after 300 s (stats: $stats)"
    EPITAPH_SUSTAINED="$(calc "$acked / ($elapsed + $EPITAPH_QUERYABLE_AFTER)")"
    log "epitaph: $(fmt '%.0f' "$EPITAPH_RATE") samples/s acked, all queryable $(fmt '%.1f' "$EPITAPH_QUERYABLE_AFTER") s later; waiting for every metric split to be sealed"
    for _ in $(seq 1 1200); do
        stats="$(http_get "$HTTP_ADDR" /api/v1/stats 2>/dev/null || true)"
        splits="$(epitaph_metric_stat "$stats" splits)"
        sealed="$(epitaph_metric_stat "$stats" sealed_splits)"
        unsealed="$(find "$WORK/epitaph/metric-splits" -mindepth 1 -maxdepth 1 -type d '!' -exec test -e '{}/split.json' ';' -print | wc -l)"
        [[ -n "$splits" && "$splits" == "$sealed" && "$unsealed" == 0 ]] && break
        sleep 0.5
    done
    [[ "$splits" == "$sealed" && "$unsealed" == 0 ]] || die "epitaph: metric splits not sealed after 600 s ($sealed of $splits)"
    wait_until_stable "$WORK/epitaph/metric-splits"
    # Counted again: a compaction (`--day-over`) may have merged splits meanwhile.
    stats="$(http_get "$HTTP_ADDR" /api/v1/stats 2>/dev/null || true)"
    EPITAPH_SPLITS="$(epitaph_metric_stat "$stats" splits)"
    EPITAPH_SPLIT_BYTES="$(dir_bytes "$WORK/epitaph/metric-splits")"
    EPITAPH_WAL_BYTES="$(dir_bytes "$WORK/epitaph/wal")"
    EPITAPH_DATA_BYTES="$(dir_bytes "$WORK/epitaph")"
    EPITAPH_RSS_KIB="$(peak_rss_kib "$SERVER_PID")"
}

# sum(count_over_time(...[24h])) at the end of the day: how many samples VM can read.
victoria_count() {
    local query="sum(count_over_time(http_server_requests_total%5B24h%5D))"
    http_get "$VM_ADDR" "/api/v1/query?query=$query&time=$((END_MS / 1000))" 2>/dev/null \
        | grep -o '"value":\[[^]]*\]' | sed 's/.*,"\([0-9.e+]*\)"\]/\1/'
}

victoria_merges_running() {
    http_get "$VM_ADDR" /metrics 2>/dev/null \
        | awk '/^vm_active_(merges|force_merges)/ { sum += $NF } END { print sum + 0 }'
}

run_victoria() {
    local ticks_before ticks_after elapsed acked started count
    log "victoria-metrics: sending $SAMPLES samples over $CONNECTIONS HTTP connections"
    ticks_before="$(cpu_ticks "$VM_PID")"
    timeout 900 "$BIN/metrics-load" victoria "${DATASET_ARGS[@]}" --http "$VM_ADDR" --connections "$CONNECTIONS" \
        >"$WORK/victoria-load.json" 2>"$WORK/victoria-load.err" || die "metrics-load victoria failed: $(tail -n 5 "$WORK/victoria-load.err")"
    ticks_after="$(cpu_ticks "$VM_PID")"
    elapsed="$(json_number "$WORK/victoria-load.json" elapsed_seconds)"
    acked="$(json_number "$WORK/victoria-load.json" samples)"
    [[ "$acked" == "$SAMPLES" ]] || log "warning: victoria-metrics acked $acked of $SAMPLES samples"
    VM_RATE="$(json_number "$WORK/victoria-load.json" samples_per_second)"
    VM_CORES="$(calc "($ticks_after - $ticks_before) / $CLOCK_TICKS / $elapsed")"
    started="$(now_seconds)"
    VM_QUERYABLE_AFTER=""
    for _ in $(seq 1 3000); do
        count="$(victoria_count || true)"
        if [[ -n "$count" ]] && awk -v c="$count" -v n="$acked" 'BEGIN { exit !(c + 0 >= n + 0) }'; then
            VM_QUERYABLE_AFTER="$(calc "$(now_seconds) - $started")"
            break
        fi
        sleep 0.1
    done
    [[ -n "$VM_QUERYABLE_AFTER" ]] || die "victoria-metrics: $acked samples not queryable after 300 s (count ${count:-none})"
    VM_SUSTAINED="$(calc "$acked / ($elapsed + $VM_QUERYABLE_AFTER)")"
    log "victoria-metrics: $(fmt '%.0f' "$VM_RATE") samples/s acked, all queryable $(fmt '%.1f' "$VM_QUERYABLE_AFTER") s later; flushing and merging"
    http_get "$VM_ADDR" /internal/force_flush >/dev/null || die "victoria-metrics: /internal/force_flush failed"
    http_get "$VM_ADDR" /internal/force_merge >/dev/null || die "victoria-metrics: /internal/force_merge failed"
    sleep 1
    for _ in $(seq 1 600); do
        [[ "$(victoria_merges_running)" == 0 ]] && break
        sleep 0.5
    done
    [[ "$(victoria_merges_running)" == 0 ]] || log "warning: victoria-metrics merges still running after 300 s"
    wait_until_stable "$WORK/vm"
    VM_BYTES="$(dir_bytes "$WORK/vm")"
    VM_DATA_BYTES="$(dir_bytes "$WORK/vm/data")"
    VM_INDEX_BYTES="$(dir_bytes "$WORK/vm/indexdb")"
    VM_RSS_KIB="$(peak_rss_kib "$VM_PID")"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
start_victoria
start_epitaph
if [[ "$VICTORIA_FIRST" == 1 ]]; then
    run_victoria
    run_epitaph
else
    run_epitaph
    run_victoria
fi

# Bytes of the metric splits by tantivy file kind, and segments per split.
find "$WORK/epitaph/metric-splits" -type f -printf '%s %f\n' \
    | awk '{ n = split($2, parts, "."); kind = (n > 1) ? parts[n] : $2; bytes[kind] += $1 }
           END { for (k in bytes) printf "%s %d\n", k, bytes[k] }' \
    | sort -k2,2nr >"$WORK/epitaph-bytes-by-kind.txt"
EPITAPH_SEGMENTS="$(find "$WORK/epitaph/metric-splits" -name '*.fast' | wc -l)"
BYTES_BY_KIND="$(awk -v samples="$SAMPLES" '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $2 / samples }' "$WORK/epitaph-bytes-by-kind.txt")"

log "timing the 24-hour rate() by version ($RUNS runs each after a warm-up)"
timeout 900 "$BIN/metrics-load" query "${DATASET_ARGS[@]}" --epitaph-http "$HTTP_ADDR" --victoria-http "$VM_ADDR" --runs "$RUNS" \
    >"$WORK/query.json" 2>"$WORK/query.txt" || die "metrics-load query failed: $(tail -n 5 "$WORK/query.txt")"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

EPITAPH_QUERY_MS="$(json_number "$WORK/query.json" epitaph_query_median_ms)"
VM_RATE_QUERY_MS="$(json_number "$WORK/query.json" victoria_rate_query_median_ms)"
VM_INCREASE_QUERY_MS="$(json_number "$WORK/query.json" victoria_increase_query_median_ms)"
EPITAPH_ERROR="$(json_number "$WORK/query.json" epitaph_max_relative_error)"
VM_INCREASE_ERROR="$(json_number "$WORK/query.json" victoria_increase_max_relative_error)"
VM_RATE_SPAN_ERROR="$(json_number "$WORK/query.json" victoria_rate_max_relative_error_to_sample_span)"
VM_RATE_VS_EPITAPH="$(json_number "$WORK/query.json" victoria_rate_max_relative_difference_to_epitaph)"
EPITAPH_PER_SAMPLE="$(calc "$EPITAPH_SPLIT_BYTES / $SAMPLES")"
VM_PER_SAMPLE="$(calc "$VM_BYTES / $SAMPLES")"
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "min") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED" }'; }
INGEST_RATIO="$(calc "$EPITAPH_RATE / $VM_RATE")"
SUSTAINED_RATIO="$(calc "$EPITAPH_SUSTAINED / $VM_SUSTAINED")"
BYTES_RATIO="$(calc "$EPITAPH_PER_SAMPLE / $VM_PER_SAMPLE")"
QUERY_RATIO="$(calc "$EPITAPH_QUERY_MS / $VM_RATE_QUERY_MS")"
ZSTD_NOTE="uncompressed"
[[ "$GRPC_ZSTD" == 1 ]] && ZSTD_NOTE="gRPC zstd, VM uncompressed"

echo
echo "== Epitaph vs VictoriaMetrics $VM_VERSION: $SERIES series, $SAMPLES samples (24 h every $STEP_SECONDS s), $REQUESTS requests, $CONNECTIONS connections, $ZSTD_NOTE, seed $SEED =="
printf '%-34s %18s %18s %8s  %s\n' "figure" "epitaph" "victoria-metrics" "ratio" "target"
printf '%-34s %18s %18s %8s  %s\n' "ingest, samples/s acked" "$(fmt '%.0f' "$EPITAPH_RATE")" "$(fmt '%.0f' "$VM_RATE")" "$(fmt '%.2f' "$INGEST_RATIO")" "≥ 0.50: $(verdict "$INGEST_RATIO" 0.5 min)"
printf '%-34s %18s %18s %8s\n' "ingest, samples/s sent→queryable" "$(fmt '%.0f' "$EPITAPH_SUSTAINED")" "$(fmt '%.0f' "$VM_SUSTAINED")" "$(fmt '%.2f' "$SUSTAINED_RATIO")"
printf '%-34s %18s %18s\n' "queryable after the last ack, s" "$(fmt '%.1f' "$EPITAPH_QUERYABLE_AFTER")" "$(fmt '%.1f' "$VM_QUERYABLE_AFTER")"
printf '%-34s %18s %18s\n' "server CPU during the load, cores" "$(fmt '%.2f' "$EPITAPH_CORES")" "$(fmt '%.2f' "$VM_CORES")"
printf '%-34s %18s %18s\n' "server peak RSS, MiB" "$(fmt '%.0f' "$(calc "$EPITAPH_RSS_KIB / 1024")")" "$(fmt '%.0f' "$(calc "$VM_RSS_KIB / 1024")")"
printf '%-34s %18s %18s %8s  %s\n' "bytes on disk per sample" "$(fmt '%.2f' "$EPITAPH_PER_SAMPLE")" "$(fmt '%.2f' "$VM_PER_SAMPLE")" "$(fmt '%.2f' "$BYTES_RATIO")" "≤ 3: $(verdict "$BYTES_RATIO" 3 max)"
printf '%-34s %18s %18s %8s  %s\n' "24 h rate() by version, median ms" "$(fmt '%.1f' "$EPITAPH_QUERY_MS")" "$(fmt '%.1f' "$VM_RATE_QUERY_MS")" "$(fmt '%.2f' "$QUERY_RATIO")" "≤ 500 ms: $(verdict "$EPITAPH_QUERY_MS" 500 max)"
printf '%-34s %18s %18s\n' "24 h increase() by version, ms" "" "$(fmt '%.1f' "$VM_INCREASE_QUERY_MS")"
echo
echo "on disk: epitaph metric splits $(fmt '%.1f' "$(calc "$EPITAPH_SPLIT_BYTES / 1e6")") MB in $EPITAPH_SPLITS sealed splits, $EPITAPH_SEGMENTS segments (wal $(fmt '%.1f' "$(calc "$EPITAPH_WAL_BYTES / 1e6")") MB, data dir $(fmt '%.1f' "$(calc "$EPITAPH_DATA_BYTES / 1e6")") MB);"
echo "         victoria-metrics $(fmt '%.1f' "$(calc "$VM_BYTES / 1e6")") MB (data $(fmt '%.1f' "$(calc "$VM_DATA_BYTES / 1e6")") MB, indexdb $(fmt '%.1f' "$(calc "$VM_INDEX_BYTES / 1e6")") MB)"
echo "epitaph bytes per sample by file kind: $BYTES_BY_KIND"
echo "answers: epitaph rate() vs sent $(fmt '%.2g' "$EPITAPH_ERROR") max relative error; vm increase()/86400 vs sent $(fmt '%.2g' "$VM_INCREASE_ERROR");"
echo "         vm rate() vs the sample-span rate $(fmt '%.2g' "$VM_RATE_SPAN_ERROR"); vm rate() vs epitaph rate() up to $(fmt '%.2f' "$(calc "$VM_RATE_VS_EPITAPH * 100")") %"
echo "load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
echo "epitaph: $SOURCE_NOTE"
echo
cat "$WORK/query.txt"
