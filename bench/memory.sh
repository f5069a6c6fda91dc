#!/usr/bin/env bash
# The gateway's resident memory through a 2,000-connection load, for judging
# allocator and buffer settings one against another (bench/README.md,
# "Memory"). One line per variant:
#
#   idle       fresh, after the first request
#   hold       holding CONNS idle keep-alive connections (each had one request,
#              all in flight together, so the upstream pool also grew)
#   peak       the highest sample (every 250 ms) under `wrk -t1 -cCONNS -dLOAD_SECS`
#   after 1 s / after 30 s   once wrk has stopped and closed its connections
#
#   bench/memory.sh                                  the default set-up
#   VARIANTS="default arena1=WEIR_MALLOC_ARENAS=1" bench/memory.sh
#
# VARIANTS is a list of NAME or NAME=ENV[,ENV...] (environment given to the
# gateway). Environment: GATEWAY_BIN [target/release/gateway], CONNS [2000],
# LOAD_SECS [10], AFTER_SECS [30], HOLD_SECS [3]. The upstream and the
# connection holder are bench/loopback.py; the gateway runs
# bench/gateway-bench.yaml with one worker pinned to core 1, the load on core 0.
set -euo pipefail
{

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
GATEWAY_BIN="${GATEWAY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/gateway}"
CONNS=${CONNS:-2000}
LOAD_SECS=${LOAD_SECS:-10}
AFTER_SECS=${AFTER_SECS:-30}
HOLD_SECS=${HOLD_SECS:-3}
VARIANTS=${VARIANTS:-default}
UPSTREAM_PORT=18080 GATEWAY_PORT=18081
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$BENCH/results/memory-$STAMP"
mkdir -p "$RUN"
log() { printf '[memory %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN/run.log" >&2; }
command -v wrk >/dev/null || { log "wrk is missing (apt-get install wrk)"; exit 1; }
[[ -x $GATEWAY_BIN ]] || { log "$GATEWAY_BIN is missing"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

for p in $UPSTREAM_PORT $GATEWAY_PORT 18091; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is already in use on 127.0.0.1"
        exit 1
    fi
done

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "uptime: $(uptime)"
    echo "tree: $(cd "$ROOT" && git log -1 --format='%h %s')"
    echo "gateway: $GATEWAY_BIN $(stat -c %y "$GATEWAY_BIN" | cut -d. -f1)"
    echo "settings: CONNS=$CONNS LOAD_SECS=$LOAD_SECS AFTER_SECS=$AFTER_SECS"
} >"$RUN/machine.txt"

taskset -c 0 python3 "$BENCH/loopback.py" serve $UPSTREAM_PORT >"$RUN/upstream.log" 2>&1 &
STARTED+=("$!")

rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
wait_port() {
    local i
    for i in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

wait_port $UPSTREAM_PORT || { log "the upstream did not start"; exit 1; }

printf '| variant | idle | holding %s | peak under wrk -c%s | after 1 s | after %s s | rps |\n| --- | --- | --- | --- | --- | --- | --- |\n' \
    "$CONNS" "$CONNS" "$AFTER_SECS" >"$RUN/summary.md"

for v in $VARIANTS; do
    name=${v%%=*} envs=()
    if [[ $v == *=* ]]; then IFS=, read -r -a envs <<<"${v#*=}"; fi
    log "$name: starting the gateway ${envs[*]:-}"
    env WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1 "${envs[@]}" taskset -c 1 \
        "$GATEWAY_BIN" run --config "$BENCH/gateway-bench.yaml" >"$RUN/$name-gateway.log" 2>&1 &
    gw=$!
    STARTED+=("$gw")
    wait_port $GATEWAY_PORT || { log "$name: gateway did not start"; cat "$RUN/$name-gateway.log" >&2; exit 1; }
    timeout 60 python3 "$BENCH/loopback.py" drive $GATEWAY_PORT 10 "x-api-key: bench-key" >/dev/null
    sleep 1
    idle=$(rss_mib $gw)

    timeout 300 taskset -c 0 python3 "$BENCH/loopback.py" hold $GATEWAY_PORT "$CONNS" "$HOLD_SECS" "x-api-key: bench-key" \
        >"$RUN/$name-hold.log" 2>&1 &
    holder=$!
    for _ in $(seq 1 1200); do grep -q holding "$RUN/$name-hold.log" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    hold=$(rss_mib $gw)
    wait $holder || true
    log "$name: $(cat "$RUN/$name-hold.log")"

    peak=0
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${LOAD_SECS}s" -H "x-api-key: bench-key" \
        "http://127.0.0.1:$GATEWAY_PORT/bench/hello" >"$RUN/$name-wrk.txt" 2>&1 &
    wrkpid=$!
    while kill -0 $wrkpid 2>/dev/null; do
        r=$(rss_mib $gw)
        peak=$(python3 -c "print(max($peak, $r))")
        sleep 0.25
    done
    wait $wrkpid || true
    sleep 1
    after1=$(rss_mib $gw)
    sleep $((AFTER_SECS - 1))
    after=$(rss_mib $gw)
    rps=$(awk '/Requests\/sec/ { print $2 }' "$RUN/$name-wrk.txt")
    printf '| %s | %s MiB | %s MiB | %s MiB | %s MiB | %s MiB | %s |\n' \
        "$name" "$idle" "$hold" "$peak" "$after1" "$after" "$rps" | tee -a "$RUN/summary.md"
    kill $gw
    wait $gw 2>/dev/null || true
done
log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg); outputs in $RUN"
cat "$RUN/summary.md"
exit 0
}
