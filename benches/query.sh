#!/usr/bin/env bash
# Epitaph's query benchmark: needle search, stats and timechart over a large corpus, with
# ripgrep over the same lines (plain files and zstd files) side by side.
#
#   1. builds the release binaries;
#   2. starts epitaph-server on loopback ports the OS picks, in a temporary data dir, with
#      a short --split-window so that the corpus ends up in several sealed splits;
#   3. generates N lines with event times spread over 24 h and a needle token in one line
#      per million (query-corpus), writes them as per-service, per-hour plain log files
#      and sends the same records to the server over OTLP;
#   4. waits until every line is searchable and every split is sealed, and meanwhile
#      writes a zstd copy of every log file (zstd -3);
#   5. times, in interleaved rounds after one warm-up round: the needle search over HTTP
#      (newest 100), rg -F over the plain files, rg -z -F over the .zst files, the stats
#      query and the timechart query over the 24 h;
#   6. prints a summary table (median and min of the rounds, ratios), stops the server and
#      deletes the temp dir.
#
# Usage: benches/query.sh [--lines N] [--runs N] [--split-window 30s] [--seed N]
#                         [--needle-every N] [--no-build] [--keep]
# --no-build measures the last release build (e.g. while another build holds the lock).
# Needs curl, jq, zstd and ripgrep (installed with apt-get when missing). The defaults
# (10,000,000 lines) need ~10 GB of free disk and take about 10 minutes on 2 cores.
set -euo pipefail

LINES=10000000
RUNS=5
SPLIT_WINDOW=30s
SEED=1
NEEDLE=qzxneedle
NEEDLE_EVERY=1000000
KEEP=0
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lines) LINES="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --split-window) SPLIT_WINDOW="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --needle-every) NEEDLE_EVERY="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "query.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { echo "[query.sh] $*" >&2; }
die() { echo "[query.sh] error: $*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
fmt() { awk -v value="$2" "BEGIN { printf \"$1\", value }"; }

WORKSPACE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WORKSPACE"

# Tools: the Debian packages, installed when missing (as agent.sh does for rsyslog).
need_package() {
    local command="$1" package="$2"
    command -v "$command" >/dev/null 2>&1 && return
    log "installing $package (apt-get)"
    apt-get install -y "$package" >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y "$package" >/dev/null 2>&1; } \
        || die "$command is missing and apt-get install $package failed"
}
need_package rg ripgrep
need_package zstd zstd
need_package jq jq
need_package curl curl

# The temp dir goes on the filesystem with the most room: plain files, zstd files, the
# WAL and the splits together take about 3.5 times the raw bytes (~260 B a line).
NEEDED_BYTES="$((LINES * 260 * 7 / 2))"
BEST_DIR=""
BEST_AVAIL=0
for candidate in "${TMPDIR:-/tmp}" /var/tmp "$WORKSPACE/target"; do
    [[ -d "$candidate" && -w "$candidate" ]] || continue
    avail="$(df -P -B1 "$candidate" | awk 'NR == 2 { print $4 }')"
    if [[ "$avail" -gt "$BEST_AVAIL" ]]; then
        BEST_AVAIL="$avail"
        BEST_DIR="$candidate"
    fi
done
[[ -n "$BEST_DIR" ]] || die "no writable temp dir"
[[ "$BEST_AVAIL" -gt "$NEEDED_BYTES" ]] \
    || die "need ~$((NEEDED_BYTES / 1000000000)) GB free, the roomiest place ($BEST_DIR) has $((BEST_AVAIL / 1000000000)) GB"
WORK="$(mktemp -d "$BEST_DIR/epitaph-query-XXXXXX")"
log "temp dir $WORK ($((BEST_AVAIL / 1000000000)) GB free there)"

SERVER_PID=""
CORPUS_PID=""
ZSTD_PID=""
stop_pid() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$CORPUS_PID"
    if [[ -n "$ZSTD_PID" ]]; then
        # The zstd copy is a subshell running xargs: stop xargs (by its parent's pid) first.
        for child in $(pgrep -P "$ZSTD_PID" 2>/dev/null || true); do stop_pid "$child"; done
        stop_pid "$ZSTD_PID"
    fi
    stop_pid "$SERVER_PID"
    if [[ "$KEEP" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$BUILD" == 1 ]]; then
    log "building release binaries"
    timeout 1800 cargo build --release -p epitaph-server -p epitaph-benches --bin query-corpus >&2
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
BIN="$TARGET_DIR/release"
for binary in epitaph-server query-corpus; do
    [[ -x "$BIN/$binary" ]] || die "$BIN/$binary was not built"
done

# What was measured: the commit, and whether the server's and the engine's sources differ
# from it (several people work in one tree; --no-build measures whatever was built last).
DIRTY="$(git status --porcelain -- server query proto 2>/dev/null | wc -l)"
BUILT_FROM="commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $DIRTY files of server/, query/, proto/ modified; epitaph-server built $(date -u -r "$BIN/epitaph-server" '+%F %T UTC')"
LOAD_BEFORE="$(uptime)"
log "load: $LOAD_BEFORE"

log "starting epitaph-server (--split-window $SPLIT_WINDOW) in $WORK/data"
mkdir -p "$WORK/data"
"$BIN/epitaph-server" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --split-window "$SPLIT_WINDOW" >"$WORK/server.out" 2>"$WORK/server.log" &
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

log "generating $LINES lines (24 h of event time, needle every $NEEDLE_EVERY lines), writing log files, sending them"
INGEST_STARTED="$(date +%s.%N)"
timeout 3600 "$BIN/query-corpus" --lines "$LINES" --seed "$SEED" --needle "$NEEDLE" --needle-every "$NEEDLE_EVERY" \
    --files "$WORK/plain" --endpoint "http://$GRPC_ADDR" >"$WORK/corpus.json" 2>"$WORK/corpus.err" &
CORPUS_PID=$!
wait "$CORPUS_PID" || die "query-corpus failed: $(tail -n 5 "$WORK/corpus.err")"
CORPUS_PID=""
ACKED_AFTER="$(calc "$(date +%s.%N) - $INGEST_STARTED")"
NEEDLE_LINES="$(jq -r .needle_lines "$WORK/corpus.json")"
ACKED_LINES="$(jq -r .load.lines "$WORK/corpus.json")"
RAW_BYTES="$(jq -r .body_bytes "$WORK/corpus.json")"
SPAN_START_MS="$(jq -r .span_start_unix_ms "$WORK/corpus.json")"
SPAN_END_MS="$(jq -r .span_end_unix_ms "$WORK/corpus.json")"
[[ "$ACKED_LINES" -ge "$LINES" ]] || die "only $ACKED_LINES of $LINES lines were acked"
log "all $ACKED_LINES lines acked after $(fmt '%.0f' "$ACKED_AFTER") s (generation included); $NEEDLE_LINES needle lines"

# The zstd copy (zstd's default level 3, one file at a time on each core), written while
# the server finishes indexing and sealing.
log "writing the zstd copy of the log files"
(
    cd "$WORK/plain"
    find . -type f -name '*.log' -printf '%P\n' | while read -r file; do mkdir -p "$WORK/zst/$(dirname "$file")"; done
    find . -type f -name '*.log' -printf '%P\n' \
        | xargs -P 2 -I '{}' zstd -q -3 '{}' -o "$WORK/zst/{}.zst"
) &
ZSTD_PID=$!

stats_field() { jq -r ".$1" <<<"$STATS"; }
log "waiting until every line is searchable and every split is sealed"
SEALED=0
for _ in $(seq 1 3600); do
    STATS="$(curl -sf --max-time 5 "http://$HTTP_ADDR/api/v1/stats" || true)"
    if [[ -n "$STATS" && "$(stats_field documents)" -ge "$ACKED_LINES" \
          && "$(stats_field splits)" -gt 0 && "$(stats_field sealed_splits)" == "$(stats_field splits)" ]]; then
        SEALED=1
        break
    fi
    sleep 0.5
done
[[ "$SEALED" == 1 ]] || die "not all lines searchable in sealed splits after 30 min: $STATS"
SEALED_AFTER="$(calc "$(date +%s.%N) - $INGEST_STARTED")"
SPLITS="$(stats_field splits)"
DOCUMENTS="$(stats_field documents)"
log "$DOCUMENTS documents in $SPLITS sealed splits, $(fmt '%.0f' "$SEALED_AFTER") s after the start"
wait "$ZSTD_PID" || die "zstd failed"
ZSTD_PID=""
sync

PLAIN_BYTES="$(du -sb "$WORK/plain" | cut -f1)"
ZST_BYTES="$(du -sb "$WORK/zst" | cut -f1)"
SPLIT_BYTES="$(du -sb "$WORK/data/splits" | cut -f1)"
FILES="$(find "$WORK/plain" -type f | wc -l)"

urlencode() { jq -rn --arg v "$1" '$v | @uri'; }
SEARCH_URL="http://$HTTP_ADDR/api/v1/search?q=$(urlencode "$NEEDLE")&limit=100"
STATS_URL="http://$HTTP_ADDR/api/v1/aggregate?q=$(urlencode '* | stats count() by version, level')"
TIMECHART_URL="http://$HTTP_ADDR/api/v1/aggregate?q=$(urlencode '* | timechart span=1m count() by level')&start=$SPAN_START_MS&end=$SPAN_END_MS"

# Each timed command runs as its own process and writes what it found to $WORK/out.NAME;
# the wall time from its start to its exit goes to $WORK/times.NAME (ms), one per round.
# Epitaph's answer over HTTP is timed end to end like rg's (process start to exit); curl's
# own time to first byte and total go to $WORK/curl.NAME.
timed() {
    local name="$1" round="$2"; shift 2
    local started ended
    started="$EPOCHREALTIME"
    "$@" >"$WORK/out.$name"
    ended="$EPOCHREALTIME"
    if [[ "$round" -gt 0 ]]; then
        calc "($ended - $started) * 1000" >>"$WORK/times.$name"
        echo >>"$WORK/times.$name"
    fi
}
http_timed() {
    local name="$1" round="$2" url="$3"
    timed "$name" "$round" curl -sf --max-time 60 -o "$WORK/body.$name" \
        -w '%{time_starttransfer} %{time_total}\n' "$url"
    [[ "$round" -gt 0 ]] && cat "$WORK/out.$name" >>"$WORK/curl.$name"
    return 0
}

log "timing: 1 warm-up round, then $RUNS rounds"
LOAD_QUERIES="$(uptime)"
for round in $(seq 0 "$RUNS"); do
    http_timed needle "$round" "$SEARCH_URL"
    timed rg_plain "$round" rg --no-config -F -- "$NEEDLE" "$WORK/plain"
    timed rg_zst "$round" rg --no-config -z -F -- "$NEEDLE" "$WORK/zst"
    http_timed stats "$round" "$STATS_URL"
    http_timed timechart "$round" "$TIMECHART_URL"
done
LOAD_AFTER="$(uptime)"

# Every contender must have found the same needle lines.
EPITAPH_HITS="$(jq '.hits | length' "$WORK/body.needle")"
RG_PLAIN_HITS="$(wc -l <"$WORK/out.rg_plain")"
RG_ZST_HITS="$(wc -l <"$WORK/out.rg_zst")"
EXPECTED_HITS="$((NEEDLE_LINES < 100 ? NEEDLE_LINES : 100))"
[[ "$EPITAPH_HITS" == "$EXPECTED_HITS" ]] || die "epitaph returned $EPITAPH_HITS needle hits, expected $EXPECTED_HITS"
[[ "$RG_PLAIN_HITS" == "$NEEDLE_LINES" ]] || die "rg found $RG_PLAIN_HITS needle lines in the plain files, expected $NEEDLE_LINES"
[[ "$RG_ZST_HITS" == "$NEEDLE_LINES" ]] || die "rg -z found $RG_ZST_HITS needle lines in the zstd files, expected $NEEDLE_LINES"
# The stats rows must add up to the whole corpus; the timechart's buckets to the lines in
# its 24 h.
count_column() { jq '(.columns | map(if type == "object" then .name else . end) | (index("count") // index("count()"))) as $i | [.rows[][$i]] | add' "$1"; }
STATS_ROWS="$(jq '.rows | length' "$WORK/body.stats")"
STATS_TOTAL="$(count_column "$WORK/body.stats")"
TIMECHART_ROWS="$(jq '.rows | length' "$WORK/body.timechart")"
TIMECHART_TOTAL="$(count_column "$WORK/body.timechart")"
[[ "$STATS_TOTAL" == "$DOCUMENTS" ]] || die "the stats rows count $STATS_TOTAL lines, the server holds $DOCUMENTS"

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n "$1" | head -n 1; }
curl_median() { awk -v c="$2" '{ print $c * 1000 }' "$WORK/curl.$1" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
splits_of() { jq -r '"\(.splits_searched) searched, \(.splits_skipped) skipped"' "$WORK/body.$1"; }
all_times() { paste -sd' ' "$WORK/times.$1" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? " " : ""), $i }'; }

NEEDLE_MEDIAN="$(median "$WORK/times.needle")"
RG_PLAIN_MEDIAN="$(median "$WORK/times.rg_plain")"
RG_ZST_MEDIAN="$(median "$WORK/times.rg_zst")"
STATS_MEDIAN="$(median "$WORK/times.stats")"
TIMECHART_MEDIAN="$(median "$WORK/times.timechart")"
# "Nx faster" or "Nx slower": Epitaph's median against another's.
speed() { awk -v e="$1" -v o="$2" 'BEGIN { if (e <= o) printf "%.0fx faster", o / e; else printf "%.1fx slower", e / o }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "pass" : "MISS") }'; }

echo
echo "== Epitaph query benchmark: $DOCUMENTS lines ($(fmt '%.2f' "$(calc "$RAW_BYTES / 1e9")") GB raw, 24 h of event time), seed $SEED, $RUNS rounds after a warm-up =="
printf '%-13s %s\n' "corpus:" "$NEEDLE_LINES needle lines ('$NEEDLE', one in $NEEDLE_EVERY); $FILES plain files $(fmt '%.2f' "$(calc "$PLAIN_BYTES / 1e9")") GB, zstd -3 copies $(fmt '%.2f' "$(calc "$ZST_BYTES / 1e9")") GB"
printf '%-13s %s\n' "epitaph:" "$SPLITS sealed splits (--split-window $SPLIT_WINDOW), $(fmt '%.2f' "$(calc "$SPLIT_BYTES / 1e9")") GB; acked after $(fmt '%.0f' "$ACKED_AFTER") s, all sealed after $(fmt '%.0f' "$SEALED_AFTER") s"
printf '%-13s %s\n' "built from:" "$BUILT_FROM"
printf '%-13s %s\n' "load:" "before ingest: ${LOAD_BEFORE##*load average: }; before queries: ${LOAD_QUERIES##*load average: }; after: ${LOAD_AFTER##*load average: }"
echo
printf '%-44s  %10s  %10s  %-26s  %-30s  %s\n' "query" "median ms" "min ms" "rounds, ms" "target / ratio" "notes"
printf '%-44s  %10.1f  %10.1f  %-26s  %-30s  %s\n' "needle, epitaph (HTTP, newest 100)" "$NEEDLE_MEDIAN" "$(minimum "$WORK/times.needle")" "$(all_times needle)" \
    "<= 300 ms: $(verdict "$NEEDLE_MEDIAN" 300)" "$EPITAPH_HITS hits; splits $(splits_of needle); curl TTFB $(fmt '%.1f' "$(curl_median needle 1)") ms, total $(fmt '%.1f' "$(curl_median needle 2)") ms"
printf '%-44s  %10.1f  %10.1f  %-26s  %-30s  %s\n' "needle, rg -F over plain files" "$RG_PLAIN_MEDIAN" "$(minimum "$WORK/times.rg_plain")" "$(all_times rg_plain)" \
    "epitaph/rg $(fmt '%.3f' "$(calc "$NEEDLE_MEDIAN / $RG_PLAIN_MEDIAN")") ($(speed "$NEEDLE_MEDIAN" "$RG_PLAIN_MEDIAN"))" "$RG_PLAIN_HITS lines"
printf '%-44s  %10.1f  %10.1f  %-26s  %-30s  %s\n' "needle, rg -z -F over .zst files" "$RG_ZST_MEDIAN" "$(minimum "$WORK/times.rg_zst")" "$(all_times rg_zst)" \
    "epitaph/rg $(fmt '%.3f' "$(calc "$NEEDLE_MEDIAN / $RG_ZST_MEDIAN")") ($(speed "$NEEDLE_MEDIAN" "$RG_ZST_MEDIAN"))" "$RG_ZST_HITS lines"
printf '%-44s  %10.1f  %10.1f  %-26s  %-30s  %s\n' "* | stats count() by version, level" "$STATS_MEDIAN" "$(minimum "$WORK/times.stats")" "$(all_times stats)" \
    "<= 1000 ms: $(verdict "$STATS_MEDIAN" 1000)" "$STATS_ROWS rows, $STATS_TOTAL lines; splits $(splits_of stats); curl TTFB $(fmt '%.1f' "$(curl_median stats 1)") ms"
printf '%-44s  %10.1f  %10.1f  %-26s  %-30s  %s\n' "* | timechart span=1m count() by level, 24 h" "$TIMECHART_MEDIAN" "$(minimum "$WORK/times.timechart")" "$(all_times timechart)" \
    "<= 1000 ms: $(verdict "$TIMECHART_MEDIAN" 1000)" "$TIMECHART_ROWS rows, $TIMECHART_TOTAL lines; splits $(splits_of timechart); curl TTFB $(fmt '%.1f' "$(curl_median timechart 1)") ms"
