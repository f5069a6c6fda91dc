#!/usr/bin/env bash
# Side-by-side benchmark of the Weir gateway (and sidecar) against nginx and
# haproxy, in one run, on loopback. See bench/README.md for the method and
# ../shared/BENCH.md for the anchors and targets.
#
#   bench/run.sh                 full run (3 rounds, 3 s warm-up, 10 s measured)
#   QUICK=1 bench/run.sh         quick pass (1 round, 1 s warm-up, 2 s measured)
#
# Environment (defaults in brackets):
#   ROUNDS [3]  WARMUP [3]  DURATION [10]  CONNS ["64 2000"]
#   RATE [5000] (oha fixed rate)  OHA_CONNS [32]  OHA_DURATION [10]
#   HOLD_CONNS [2000] (idle connections held for the RSS sample)
#   SIDECAR_HOLD_CONNS [1000]
#   TARGETS ["direct weir nginx haproxy"]; LEVERS=1 adds the gateway variants
#     weir-jemalloc weir-mimalloc weir-routes10k weir-accesslog weir-workers2 weir-pool256
#   SIDECAR_CONNS ["64"]  SKIP_SIDECAR [0]  SKIP_MTLS [0]  SKIP_BUILD [0]  SKIP_INSTALL [0]
#   NICE [-10]: niceness of everything measured (after the build)
#   GATEWAY_BIN, SIDECAR_BIN: binaries to use instead of target/release/ (with SKIP_BUILD=1)
#
# Pinning: every proxy on core 1 (`taskset -c 1`), wrk/oha and the upstream on
# core 0. Each proxy runs one worker (nginx `worker_processes 1`, haproxy
# `nbthread 1`, Weir `TOKIO_WORKER_THREADS=1`). Every run stops by itself.
set -euo pipefail
# The whole script is one compound command, so bash parses all of it before
# running any: editing the file during a run cannot change the running one.
{

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"

if [[ "${QUICK:-0}" == 1 ]]; then
    ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1} DURATION=${DURATION:-2} OHA_DURATION=${OHA_DURATION:-2} HOLD_SECS=${HOLD_SECS:-3}
fi
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-"64 2000"}
RATE=${RATE:-5000}
OHA_CONNS=${OHA_CONNS:-32}
OHA_DURATION=${OHA_DURATION:-10}
HOLD_CONNS=${HOLD_CONNS:-2000}
HOLD_SECS=${HOLD_SECS:-4}
SIDECAR_HOLD_CONNS=${SIDECAR_HOLD_CONNS:-1000}
SIDECAR_CONNS=${SIDECAR_CONNS:-64}
TARGETS=${TARGETS:-"direct weir nginx haproxy"}
if [[ "${LEVERS:-0}" == 1 ]]; then
    TARGETS="$TARGETS weir-jemalloc weir-mimalloc weir-routes10k weir-accesslog weir-workers2 weir-pool256"
fi
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

# Loopback ports. gateway-bench.yaml and sidecar-bench.yaml name the same ones.
UPSTREAM_PORT=18080 WEIR_PORT=18081 NGINX_PORT=18082 HAPROXY_PORT=18083
SIDECAR_PORT=18084 SIDECAR_ADMIN_PORT=18094 OTLP_SINK_PORT=18085 SIDECAR_INBOUND_PORT=18086
PATH_UNDER_TEST=/bench/hello

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$BENCH/results/$STAMP"
mkdir -p "$RUN"
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN/run.log" >&2; }

# ---------------------------------------------------------------- tools
install_tools() {
    local missing=()
    for t in wrk nginx haproxy python3 curl taskset; do
        command -v "$t" >/dev/null 2>&1 || [[ -x "/usr/sbin/$t" ]] || missing+=("$t")
    done
    if ((${#missing[@]})); then
        local pkgs=()
        for t in "${missing[@]}"; do
            case "$t" in taskset) pkgs+=(util-linux) ;; python3) pkgs+=(python3-minimal) ;; *) pkgs+=("$t") ;; esac
        done
        log "installing ${pkgs[*]} from Debian packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
    fi
    if ! command -v oha >/dev/null 2>&1; then
        if [[ -x "$HOME/.cargo/bin/oha" ]]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            log "installing oha (cargo install oha --locked; takes a few minutes)"
            cargo install oha --locked
            export PATH="$HOME/.cargo/bin:$PATH"
        fi
    fi
}
[[ "${SKIP_INSTALL:-0}" == 1 ]] || install_tools
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"

# ---------------------------------------------------------------- build
UPSTREAM_BIN="$BENCH/upstream/target/release/weir-bench-upstream"
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' || echo "$ROOT/target")"
GATEWAY_BIN="${GATEWAY_BIN:-$TARGET_DIR/release/gateway}"
SIDECAR_BIN="${SIDECAR_BIN:-$TARGET_DIR/release/sidecar}"
SIDECAR_OK=0
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building the upstream, the gateway and the sidecar (release)"
    cargo build --release --manifest-path "$BENCH/upstream/Cargo.toml" 2>"$RUN/build-upstream.log"
    (cd "$ROOT" && cargo build --release -p gateway) 2>"$RUN/build-gateway.log"
    if [[ "${SKIP_SIDECAR:-0}" != 1 ]]; then
        if (cd "$ROOT" && cargo build --release -p sidecar) 2>"$RUN/build-sidecar.log"; then
            SIDECAR_OK=1
        else
            log "sidecar does not build (see $RUN/build-sidecar.log): skipping the sidecar part"
        fi
    fi
else
    if [[ -x "$SIDECAR_BIN" && "${SKIP_SIDECAR:-0}" != 1 ]]; then SIDECAR_OK=1; fi
fi
if [[ $SIDECAR_OK == 1 ]] && ! "$SIDECAR_BIN" --help 2>/dev/null | grep -qw run; then
    log "the sidecar binary has no 'run' subcommand yet: skipping the sidecar part"
    SIDECAR_OK=0
fi

# Everything started from here on (upstream, proxies, wrk, oha) inherits this
# niceness: the same for every target, and it keeps other work on the machine
# (compilers of the other engineers) from deciding the result. NICE=0 turns it off.
renice -n "${NICE:--10}" -p $$ >/dev/null 2>&1 || log "cannot renice to ${NICE:--10}; running at the default priority"

# ---------------------------------------------------------------- machine
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "uptime: $(uptime)"
    echo "nproc: $(nproc)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    free -h
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "oha: $(oha --version 2>&1 | head -1)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "haproxy: $(haproxy -v 2>&1 | head -1)"
    echo "gateway: $(cd "$ROOT" && git log -1 --format='%h %s' -- gateway proxy-core) (tree head)"
    echo "binaries: $GATEWAY_BIN $(stat -c %y "$GATEWAY_BIN" 2>/dev/null | cut -d. -f1); $SIDECAR_BIN"
    echo "niceness: $(nice)"
    echo "settings: ROUNDS=$ROUNDS WARMUP=$WARMUP DURATION=$DURATION CONNS='$CONNS' RATE=$RATE OHA_CONNS=$OHA_CONNS OHA_DURATION=$OHA_DURATION HOLD_CONNS=$HOLD_CONNS"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt" >&2

# Up to 2,000 client plus 2,000 upstream sockets per process: raise the soft
# limit as far as the hard limit allows (containers often cap it at 20,000).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open files limit: $(ulimit -n)"

# ---------------------------------------------------------------- processes
declare -A PID PORT
PORT[direct]=$UPSTREAM_PORT PORT[weir]=$WEIR_PORT PORT[nginx]=$NGINX_PORT PORT[haproxy]=$HAPROXY_PORT
PORT[sidecar]=$SIDECAR_PORT
STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

for p in $UPSTREAM_PORT $WEIR_PORT $NGINX_PORT $HAPROXY_PORT $SIDECAR_PORT $SIDECAR_ADMIN_PORT $OTLP_SINK_PORT \
    $SIDECAR_INBOUND_PORT 18091; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is already in use on 127.0.0.1: stop what listens there first"
        exit 1
    fi
done

url() { echo "http://127.0.0.1:${PORT[$1]}$PATH_UNDER_TEST"; }
# The gateway part sends the bench route's API key to every target (Weir checks
# it, the others ignore it); the sidecar part sends `Host: bench` to every
# target (the sidecar routes by it; the others ignore it).
API_KEY_HEADER="x-api-key: bench-key"
GW_HDRS=(-H "$API_KEY_HEADER")
SC_HDRS=(-H "Host: bench")
HDRS=("${GW_HDRS[@]}")
KP="" # kind prefix of measurements.tsv lines: "" for the gateway part, "sidecar_" after

wait_ready() { # name
    local i
    for i in $(seq 1 100); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' "${HDRS[@]}" "$(url "$1")" 2>/dev/null)" == "200:1024" ]]; then
            return 0
        fi
        sleep 0.1
    done
    log "$1 did not answer 200 with the 1 KiB body on $(url "$1")"
    return 1
}

# The process ids whose memory counts for a target (nginx: master and worker).
pids_of() {
    local p=${PID[$1]}
    echo "$p"
    if [[ $1 == nginx ]]; then pgrep -P "$p" || true; fi
}
# nginx's memory is its worker's, as in BENCH.md's anchors: the master only
# supervises and its ~7 MB are mostly file pages shared with the worker.
rss_pids() {
    if [[ $1 == nginx ]]; then pgrep -P "${PID[nginx]}" || true; else echo "${PID[$1]}"; fi
}
rss_kb() { # target -> summed VmRSS in KiB
    local sum=0 v p
    for p in $(rss_pids "$1"); do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
cpu_ticks() { # target -> summed utime+stime in clock ticks
    local sum=0 v p
    for p in $(pids_of "$1"); do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

render() { # template -> output, substituting the run dir and ports
    sed -e "s#@RUN@#$RUN#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@NGINX_PORT@#$NGINX_PORT#g" \
        -e "s#@HAPROXY_PORT@#$HAPROXY_PORT#g" -e "s#@PROXY_PORT@#${3:-}#g" "$1" >"$2"
}

start_upstream() {
    taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" serve "127.0.0.1:$UPSTREAM_PORT" 1024 >"$RUN/upstream.log" 2>&1 &
    PID[direct]=$!
    STARTED+=("$!")
}
start_weir() {
    "$GATEWAY_BIN" validate --config "$BENCH/gateway-bench.yaml" >"$RUN/gateway-validate.log" 2>&1 || {
        log "gateway validate rejected bench/gateway-bench.yaml:"
        cat "$RUN/gateway-validate.log" >&2
        exit 1
    }
    WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$BENCH/gateway-bench.yaml" \
        >"$RUN/gateway.log" 2>&1 &
    PID[weir]=$!
    STARTED+=("$!")
}
# Gateway variants for the levers measured from outside (same binary, same
# pinning, each on its own port so the rounds interleave with the baseline):
#   weir-jemalloc, weir-mimalloc   the allocator, by LD_PRELOAD of Debian's
#                                  libjemalloc2 / libmimalloc2.0
#   weir-routes10k                 10,000 more routes in the table (gen_routes.py)
#   weir-accesslog                 the JSON access log on (written to /dev/null)
#   weir-workers2                  two worker threads, still on one core
#   weir-pool256                   an upstream idle pool of 256 instead of 4,096
VARIANT_INDEX=0
start_weir_variant() { # target
    local t=$1 port admin cfg out envs=(WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1)
    VARIANT_INDEX=$((VARIANT_INDEX + 1))
    port=$((18100 + VARIANT_INDEX)) admin=$((18200 + VARIANT_INDEX))
    cfg="$RUN/$t.yaml" out="$RUN/$t.log"
    # The copy lives in the run directory: file paths in it become absolute.
    sed -e "s/127.0.0.1:$WEIR_PORT/127.0.0.1:$port/" -e "s/127.0.0.1:18091/127.0.0.1:$admin/" \
        -e "s#\.\./config/#$ROOT/config/#g" "$BENCH/gateway-bench.yaml" >"$cfg"
    case "$t" in
        weir-jemalloc) envs+=(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2) ;;
        weir-mimalloc) envs+=(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2) ;;
        weir-routes10k) python3 "$BENCH/gen_routes.py" 10000 "$cfg" ;;
        weir-accesslog) sed -i 's/access_log: off/access_log: json/' "$cfg" && out=/dev/null ;;
        weir-workers2) envs=(WEIR_WORKER_THREADS=2 TOKIO_WORKER_THREADS=2) ;;
        weir-pool256) sed -i 's/max_idle_per_endpoint: 4096/max_idle_per_endpoint: 256/' "$cfg" ;;
        *) log "unknown gateway variant $t"; exit 1 ;;
    esac
    PORT[$t]=$port
    env "${envs[@]}" taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$cfg" >"$out" 2>&1 &
    PID[$t]=$!
    STARTED+=("$!")
}
start_nginx() {
    mkdir -p "$RUN/nginx"
    render "$BENCH/nginx.conf.in" "$RUN/nginx.conf"
    taskset -c "$PROXY_CPU" nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx.conf" >"$RUN/nginx.log" 2>&1 &
    PID[nginx]=$!
    STARTED+=("$!")
}
start_haproxy() {
    render "$BENCH/haproxy.cfg.in" "$RUN/haproxy.cfg"
    taskset -c "$PROXY_CPU" haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
    PID[haproxy]=$!
    STARTED+=("$!")
}

start_sidecar() {
    # A second upstream instance is the OTLP/HTTP sink the sidecar exports to.
    taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" serve "127.0.0.1:$OTLP_SINK_PORT" 1024 >"$RUN/otlp-sink.log" 2>&1 &
    STARTED+=("$!")
    "$SIDECAR_BIN" validate --config "$BENCH/sidecar-bench.yaml" >"$RUN/sidecar-validate.log" 2>&1 || {
        log "sidecar validate rejected bench/sidecar-bench.yaml: skipping the sidecar part"
        cat "$RUN/sidecar-validate.log" >&2
        SIDECAR_OK=0
        return 0
    }
    WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$SIDECAR_BIN" run \
        --config "$BENCH/sidecar-bench.yaml" >"$RUN/sidecar.log" 2>&1 &
    PID[sidecar]=$!
    STARTED+=("$!")
}

# ---------------------------------------------------------------- measurements
# Every measurement appends one line to measurements.tsv:
#   kind target conns round file rss_peak_kb cpu_seconds
TSV="$RUN/measurements.tsv"
printf 'kind\ttarget\tconns\tround\tfile\trss_peak_kb\tcpu_s\n' >"$TSV"

# Samples the target's RSS every 250 ms into a file until killed; prints the peak.
rss_sampler() { # target outfile
    local peak=0 v
    while :; do
        v=$(rss_kb "$1")
        ((v > peak)) && peak=$v && echo "$peak" >"$2"
        sleep 0.25
    done
}

measure_idle() { # target
    sleep 1
    printf '%sidle\t%s\t0\t0\t-\t%s\t0\n' "$KP" "$1" "$(rss_kb "$1")" >>"$TSV"
}

measure_hold() { # target conns
    local out="$RUN/${KP}hold-$1-c$2.txt" holder rss=0 i host="127.0.0.1:${PORT[$1]}"
    if [[ -n "$KP" ]]; then host=bench; fi
    taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" hold "127.0.0.1:${PORT[$1]}" "$2" "$HOLD_SECS" "$PATH_UNDER_TEST" "$host" \
        "$API_KEY_HEADER" >"$out" 2>&1 &
    holder=$!
    for i in $(seq 1 200); do
        grep -q '^holding' "$out" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1
    rss=$(rss_kb "$1")
    wait "$holder" || true
    printf '%shold\t%s\t%s\t0\t%s\t%s\t0\n' "$KP" "$1" "$2" "$(basename "$out")" "$rss" >>"$TSV"
    log "  $1 holding $(head -c 60 "$out"): RSS $((rss / 1024)) MiB"
    sleep 1
}

measure_wrk() { # target conns round
    local t=$1 c=$2 r=$3 out="$RUN/${KP}wrk-$1-c$2-r$3.txt" peak="$RUN/.peak" sampler c0 c1
    taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${WARMUP}s" "${HDRS[@]}" "$(url "$t")" >/dev/null 2>&1 || true
    echo 0 >"$peak"
    rss_sampler "$t" "$peak" &
    sampler=$!
    c0=$(cpu_ticks "$t")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency "${HDRS[@]}" "$(url "$t")" >"$out" 2>&1 || true
    c1=$(cpu_ticks "$t")
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    printf '%swrk\t%s\t%s\t%s\t%s\t%s\t%s\n' "$KP" "$t" "$c" "$r" "$(basename "$out")" "$(cat "$peak")" \
        "$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/h}')" >>"$TSV"
    log "  wrk $t c=$c r=$r: $(awk '/Requests\/sec/{print $2}' "$out") rps"
}

measure_oha() { # target round
    local t=$1 r=$2 out="$RUN/${KP}oha-$1-r$2.json" peak="$RUN/.peak" sampler c0 c1
    echo 0 >"$peak"
    rss_sampler "$t" "$peak" &
    sampler=$!
    c0=$(cpu_ticks "$t")
    taskset -c "$LOAD_CPU" oha -q "$RATE" -c "$OHA_CONNS" -z "${OHA_DURATION}s" --latency-correction --no-tui \
        --output-format json "${HDRS[@]}" "$(url "$t")" >"$out" 2>"$RUN/${KP}oha-$t-r$r.err" || true
    c1=$(cpu_ticks "$t")
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    printf '%soha\t%s\t%s\t%s\t%s\t%s\t%s\n' "$KP" "$t" "$OHA_CONNS" "$r" "$(basename "$out")" "$(cat "$peak")" \
        "$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/h}')" >>"$TSV"
    log "  oha $t r=$r done"
}

# ---------------------------------------------------------------- start everything
log "run directory: $RUN"
log "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
start_upstream
wait_ready direct
measure_idle direct
for t in $TARGETS; do
    case "$t" in
        weir) start_weir ;;
        weir-*) start_weir_variant "$t" ;;
        nginx) start_nginx ;;
        haproxy) start_haproxy ;;
        direct) continue ;;
        *) log "unknown target $t"; exit 1 ;;
    esac
    wait_ready "$t"
    measure_idle "$t"
done
SIDECAR_TARGETS=""
if [[ $SIDECAR_OK == 1 ]]; then
    start_sidecar
fi
if [[ $SIDECAR_OK == 1 ]]; then
    HDRS=("${SC_HDRS[@]}")
    if wait_ready sidecar; then
        KP=sidecar_
        # Fresh idle figures for all; nginx and haproxy are the same processes
        # as in the gateway part, configured as the same plain forwarder.
        for t in direct sidecar nginx haproxy; do
            if [[ $t == sidecar || " $TARGETS " == *" $t "* ]]; then
                SIDECAR_TARGETS+="$t "
                measure_idle "$t"
            fi
        done
    else
        SIDECAR_OK=0
    fi
    KP="" HDRS=("${GW_HDRS[@]}")
fi

# ---------------------------------------------------------------- gateway part
log "GATEWAY: resident memory with $HOLD_CONNS open idle connections"
for t in $TARGETS; do measure_hold "$t" "$HOLD_CONNS"; done

log "GATEWAY: throughput and latency with wrk: rounds=$ROUNDS conns='$CONNS' warm-up ${WARMUP}s, measured ${DURATION}s"
for r in $(seq 1 "$ROUNDS"); do
    for c in $CONNS; do
        for t in $TARGETS; do measure_wrk "$t" "$c" "$r"; done
    done
done

log "GATEWAY: latency at a fixed $RATE rps with oha (-c $OHA_CONNS, ${OHA_DURATION}s, --latency-correction)"
for r in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do measure_oha "$t" "$r"; done
done

for t in $TARGETS; do printf 'idle_after\t%s\t0\t0\t-\t%s\t0\n' "$t" "$(rss_kb "$t")" >>"$TSV"; done

# ---------------------------------------------------------------- sidecar part
# The sidecar in outbound (explicit) mode, the app side being wrk/oha with
# `Host: bench`; retries, breaker and tracing on (bench/sidecar-bench.yaml).
if [[ $SIDECAR_OK == 1 ]]; then
    KP=sidecar_ HDRS=("${SC_HDRS[@]}")
    log "SIDECAR: resident memory with $SIDECAR_HOLD_CONNS open idle connections"
    for t in $SIDECAR_TARGETS; do measure_hold "$t" "$SIDECAR_HOLD_CONNS"; done
    log "SIDECAR: maximum throughput with wrk: conns='$SIDECAR_CONNS'"
    for r in $(seq 1 "$ROUNDS"); do
        for c in $SIDECAR_CONNS; do
            for t in $SIDECAR_TARGETS; do measure_wrk "$t" "$c" "$r"; done
        done
    done
    log "SIDECAR: added latency at a fixed $RATE rps with oha"
    for r in $(seq 1 "$ROUNDS"); do
        for t in $SIDECAR_TARGETS; do measure_oha "$t" "$r"; done
    done
    for t in $SIDECAR_TARGETS; do printf 'sidecar_idle_after\t%s\t0\t0\t-\t%s\t0\n' "$t" "$(rss_kb "$t")" >>"$TSV"; done
    KP="" HDRS=("${GW_HDRS[@]}")
else
    log "SIDECAR: skipped (not built, no run subcommand, or config rejected)"
fi

# ---------------------------------------------------------------- mTLS part
# Two sidecars, plaintext against mutual TLS, with connection reuse and with a
# new connection per request: CPU per request of the whole hop. In-process
# (sidecar/tests/mtls_cpu.rs), because the sidecar binary gets its workload
# identity from the identity client, which this script does not run.
if [[ "${SKIP_MTLS:-0}" != 1 ]]; then
    log "MTLS: CPU per request, plaintext vs mutual TLS (release, in-process)"
    if (cd "$ROOT" && cargo test --release -p sidecar --test mtls_cpu -- --ignored --nocapture) \
        >"$RUN/mtls.log" 2>&1; then
        grep '^|' "$RUN/mtls.log" | tee "$RUN/mtls.md" >&2
    else
        log "MTLS: the measurement failed (see $RUN/mtls.log)"
    fi
    # The handshake: a new mutual-TLS connection per request against nginx's
    # and haproxy's TLS termination (bench/tls_handshake.sh).
    log "MTLS: server CPU per new mutual-TLS connection, weir vs nginx vs haproxy"
    if RUN_DIR="$RUN/tls" SIDECAR_BIN="$SIDECAR_BIN" "$BENCH/tls_handshake.sh" >"$RUN/tls.log" 2>&1; then
        tee "$RUN/tls.md" <"$RUN/tls/summary.md" >&2
    else
        log "MTLS: the handshake measurement failed (see $RUN/tls.log)"
    fi
fi

log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load-after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/machine.txt"
python3 "$BENCH/summarize.py" "$RUN" | tee "$RUN/summary.md"
log "raw outputs in $RUN"
exit 0
}
