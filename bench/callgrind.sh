#!/usr/bin/env bash
# Instructions per request, from `valgrind --tool=callgrind`: a figure that is
# the same on every run whatever else the machine is doing, for judging a
# change without a quiet machine. See bench/README.md ("Instructions per request").
#
#   bench/callgrind.sh            gateway and sidecar
#   TARGETS=gateway bench/callgrind.sh
#   TARGETS=sidecar-inbound bench/callgrind.sh   the sidecar's inbound side
#
# For each target it makes two runs of the release binary under callgrind:
#   measured  start, WARMUP requests, REQUESTS requests, stop (SIGTERM)
#   idle      start, WARMUP requests, stay idle as long as the measured part took, stop
# and reports (Ir(measured) - Ir(idle)) / REQUESTS, with the functions whose
# cost differs most (inclusive and self), per request.
#
# The gateway runs bench/gateway-bench.yaml (API key + three GCRA limits on the
# measured route, 33 routes) with the health checks removed: they run on a
# timer, not per request, and would make the idle difference depend on time.
# The sidecar runs bench/sidecar-bench.yaml (retries, breaker, P2C-EWMA, OTLP
# tracing with every trace sampled), driven on its outbound port; target
# sidecar-inbound drives the same sidecar on its inbound port (the path to the
# local app, which is the bench upstream). The upstream, the OTLP sink and the
# request driver are bench/loopback.py (plain sockets, outside valgrind):
# one connection, one request after the other.
#
# Environment (defaults in brackets): TARGETS ["gateway sidecar"],
#   REQUESTS [2000], WARMUP [200], GATEWAY_BIN, SIDECAR_BIN [target/release/*],
#   TOP [25] functions listed per table.
set -euo pipefail
{

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
TARGETS=${TARGETS:-"gateway sidecar"}
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-200}
TOP=${TOP:-25}
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
GATEWAY_BIN="${GATEWAY_BIN:-$TARGET_DIR/release/gateway}"
SIDECAR_BIN="${SIDECAR_BIN:-$TARGET_DIR/release/sidecar}"
UPSTREAM_PORT=18080 GATEWAY_PORT=18081 SIDECAR_PORT=18084 OTLP_SINK_PORT=18085
SIDECAR_INBOUND_PORT=18086 # inbound.address in bench/sidecar-bench.yaml

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$BENCH/results/callgrind-$STAMP"
mkdir -p "$RUN"
log() { printf '[callgrind %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN/run.log" >&2; }

command -v valgrind >/dev/null || { log "valgrind is not installed (apt-get install valgrind)"; exit 1; }
for t in $TARGETS; do
    bin=$GATEWAY_BIN
    [[ $t == sidecar* ]] && bin=$SIDECAR_BIN
    [[ -x $bin ]] || { log "$bin is missing: cargo build --release -p gateway -p sidecar"; exit 1; }
done

for p in $UPSTREAM_PORT $GATEWAY_PORT $SIDECAR_PORT $OTLP_SINK_PORT 18086 18091 18094; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is already in use on 127.0.0.1: stop what listens there first"
        exit 1
    fi
done

STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "uptime: $(uptime)"
    echo "valgrind: $(valgrind --version)"
    echo "tree: $(cd "$ROOT" && git log -1 --format='%h %s')"
    echo "gateway: $GATEWAY_BIN $(stat -c %y "$GATEWAY_BIN" 2>/dev/null | cut -d. -f1)"
    echo "sidecar: $SIDECAR_BIN $(stat -c %y "$SIDECAR_BIN" 2>/dev/null | cut -d. -f1)"
    echo "settings: REQUESTS=$REQUESTS WARMUP=$WARMUP"
} >"$RUN/machine.txt"

python3 "$BENCH/loopback.py" serve $UPSTREAM_PORT $OTLP_SINK_PORT >"$RUN/upstream.log" 2>&1 &
STARTED+=("$!")

# The gateway's config without health checks; its relative file paths made absolute.
sed -e '/health_check:/d' -e "s#file: \.\./config/#file: $ROOT/config/#" \
    "$BENCH/gateway-bench.yaml" >"$RUN/gateway.yaml"

wait_port() { # port; bounded: valgrind starts slowly
    local i
    for i in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

drive() { # port count
    if [[ $1 == "$SIDECAR_PORT" || $1 == "$SIDECAR_INBOUND_PORT" ]]; then
        timeout 1200 python3 "$BENCH/loopback.py" drive "$1" "$2" "host: bench"
    else
        timeout 1200 python3 "$BENCH/loopback.py" drive "$1" "$2" "x-api-key: bench-key"
    fi
}

# One callgrind run: target mode [idle seconds] -> prints the seconds the requests took.
run_one() {
    local t=$1 mode=$2 idle_secs=${3:-0} bin cfg port pid start end
    if [[ $t == gateway ]]; then
        bin=$GATEWAY_BIN cfg=$RUN/gateway.yaml port=$GATEWAY_PORT
    elif [[ $t == sidecar-inbound ]]; then
        bin=$SIDECAR_BIN cfg=$BENCH/sidecar-bench.yaml port=$SIDECAR_INBOUND_PORT
    else
        bin=$SIDECAR_BIN cfg=$BENCH/sidecar-bench.yaml port=$SIDECAR_PORT
    fi
    WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1 WEIR_LOG_FORMAT=text RUST_LOG=warn \
        valgrind --tool=callgrind --callgrind-out-file="$RUN/$t-$mode.out" \
        "$bin" run --config "$cfg" >"$RUN/$t-$mode.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    wait_port "$port" || { log "$t did not listen on $port"; cat "$RUN/$t-$mode.log" >&2; exit 1; }
    drive "$port" "$WARMUP" >>"$RUN/$t-$mode.log" 2>&1 || { log "$t: warm-up failed"; tail "$RUN/$t-$mode.log" >&2; exit 1; }
    start=$(date +%s.%N)
    if [[ $mode == measured ]]; then
        drive "$port" "$REQUESTS" >>"$RUN/$t-$mode.log" 2>&1 || { log "$t: requests failed"; tail "$RUN/$t-$mode.log" >&2; exit 1; }
    else
        sleep "$idle_secs"
    fi
    end=$(date +%s.%N)
    kill -TERM "$pid"
    local i
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -s "$RUN/$t-$mode.out" ]] || { log "$t: no callgrind output"; exit 1; }
    python3 -c "print(f'{$end - $start:.1f}')"
}

for t in $TARGETS; do
    log "$t: measured run ($WARMUP warm-up + $REQUESTS requests under callgrind)"
    secs=$(run_one "$t" measured)
    log "$t: $REQUESTS requests took ${secs}s under callgrind; idle run of the same length"
    run_one "$t" idle "$secs" >/dev/null
    python3 "$BENCH/callgrind_report.py" "$t" "$REQUESTS" "$RUN/$t-measured.out" "$RUN/$t-idle.out" "$TOP" \
        | tee "$RUN/$t.md"
done
cat "$RUN"/*.md >"$RUN/summary.md" 2>/dev/null || true
log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg); outputs in $RUN"
exit 0
}
