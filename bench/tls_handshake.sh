#!/usr/bin/env bash
# What a new mutual-TLS connection costs the server: Weir's sidecar inbound
# against nginx's and haproxy's TLS termination, in one run, on loopback.
# See bench/README.md ("mTLS: the handshake against nginx and haproxy").
#
#   bench/tls_handshake.sh
#   CONNS=2000 ROUNDS=3 bench/tls_handshake.sh
#
# Every server gets the same ECDSA P-256 certificate (a SPIFFE ID as its URI
# SAN, signed by a test CA made here with openssl), requires a client
# certificate from that CA, speaks TLS 1.3 only, resumes no sessions, and
# answers one HTTP/1.1 GET per connection by proxying it to the same
# upstream (bench/loopback.py, 1 KiB body). The client is `openssl s_time
# -new`: a full handshake with a client certificate, one request, close.
# The figure is the server's CPU (user + system, from /proc) per connection;
# s_time's own rate is client-bound and only printed.
#
# Pinning: servers on core 1, the client and the upstream on core 0; each
# server one worker. Environment (defaults in brackets): CONNS [1000]
# connections per round, ROUNDS [3] (median), SIDECAR_BIN
# [target/release/sidecar], TARGETS ["weir nginx haproxy"].
set -euo pipefail
{

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
CONNS=${CONNS:-1000}
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-"weir nginx haproxy"}
SIDECAR_BIN="${SIDECAR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sidecar}"
UPSTREAM_PORT=18180
declare -A PORT=([weir]=18181 [nginx]=18182 [haproxy]=18183)
TICKS=$(getconf CLK_TCK)

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="${RUN_DIR:-$BENCH/results/tls-$STAMP}"
mkdir -p "$RUN"
log() { printf '[tls %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN/run.log" >&2; }

for t in $TARGETS; do
    case $t in
    weir) [[ -x $SIDECAR_BIN ]] || { log "$SIDECAR_BIN is missing: cargo build --release -p sidecar"; exit 1; } ;;
    nginx | haproxy) command -v "$t" >/dev/null || { log "$t is not installed"; exit 1; } ;;
    *) log "unknown target $t"; exit 1 ;;
    esac
done
for p in $UPSTREAM_PORT "${PORT[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is already in use on 127.0.0.1"
        exit 1
    fi
done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# ------------------------------------------------------------------ the PKI
PKI="$RUN/pki"
mkdir -p "$PKI"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$PKI/ca.key"
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=bench trust anchor" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null
leaf() { # name spiffe-id
    ec "$PKI/$1.key"
    openssl req -new -key "$PKI/$1.key" -subj "/" -out "$PKI/$1.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:%s\n' "$2" >"$PKI/$1.ext"
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 1 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" 2>/dev/null
}
leaf server spiffe://weir.local/ns/default/sa/payment
leaf client spiffe://weir.local/ns/default/sa/order
# The sidecar's cert-manager layout: tls.crt, tls.key (PKCS#8), ca.crt.
mkdir -p "$PKI/weir"
cp "$PKI/server.crt" "$PKI/weir/tls.crt"
openssl pkcs8 -topk8 -nocrypt -in "$PKI/server.key" -out "$PKI/weir/tls.key"
cp "$PKI/ca.crt" "$PKI/weir/ca.crt"

# ------------------------------------------------------------------ servers
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "nothing listens on $1"
    return 1
}

taskset -c 0 python3 "$BENCH/loopback.py" serve "$UPSTREAM_PORT" >"$RUN/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UPSTREAM_PORT"

declare -A PID
start_weir() {
    cat >"$RUN/sidecar.yaml" <<EOF
service: payment
inbound:
  address: 127.0.0.1:${PORT[weir]}
  app: 127.0.0.1:$UPSTREAM_PORT
  tls: { mode: strict }
outbound:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
identity:
  files: { cert: $PKI/weir/tls.crt, key: $PKI/weir/tls.key, ca: $PKI/weir/ca.crt }
shutdown: { drain: 1s }
EOF
    WEIR_WORKER_THREADS=1 TOKIO_WORKER_THREADS=1 taskset -c 1 "$SIDECAR_BIN" run --config "$RUN/sidecar.yaml" \
        >"$RUN/weir.log" 2>&1 &
    PID[weir]=$!
}
start_nginx() {
    mkdir -p "$RUN/nginx"
    cat >"$RUN/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $RUN/nginx/client_body;
    proxy_temp_path $RUN/nginx/proxy;
    fastcgi_temp_path $RUN/nginx/fastcgi;
    uwsgi_temp_path $RUN/nginx/uwsgi;
    scgi_temp_path $RUN/nginx/scgi;
    upstream bench { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl backlog=4096;
        ssl_certificate $PKI/server.crt;
        ssl_certificate_key $PKI/server.key;
        ssl_client_certificate $PKI/ca.crt;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    taskset -c 1 nginx -p "$RUN/nginx" -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" >"$RUN/nginx.log" 2>&1 &
    # The worker is nginx's child: its CPU is what the requests cost.
    local master=$!
    PIDS+=("$master")
    for _ in $(seq 1 100); do
        PID[nginx]=$(pgrep -P "$master" | head -1 || true)
        [[ -n ${PID[nginx]} ]] && return 0
        sleep 0.05
    done
    log "nginx started no worker"
    return 1
}
start_haproxy() {
    cat "$PKI/server.crt" "$PKI/server.key" >"$PKI/haproxy.pem"
    cat >"$RUN/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend bench
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $PKI/haproxy.pem ca-file $PKI/ca.crt verify required
    default_backend bench
backend bench
    server upstream 127.0.0.1:$UPSTREAM_PORT
EOF
    taskset -c 1 haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
    PID[haproxy]=$!
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

for t in $TARGETS; do
    "start_$t"
    [[ -n ${PID[$t]:-} ]] && PIDS+=("${PID[$t]}")
    wait_port "${PORT[$t]}"
done

# One connection through each first: the servers are up and the chain is right.
for t in $TARGETS; do
    if ! printf 'GET /bench/hello HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -quiet -connect "127.0.0.1:${PORT[$t]}" -tls1_3 \
            -cert "$PKI/client.crt" -key "$PKI/client.key" -CAfile "$PKI/ca.crt" 2>"$RUN/check-$t.err" |
        grep -q '^HTTP/1.1 200'; then
        log "$t: a mutual-TLS request did not get 200 (see $RUN/check-$t.err)"
        exit 1
    fi
done

# ------------------------------------------------------------------ rounds
TSV="$RUN/results.tsv"
printf 'target\tround\tconns\tcpu_us_per_conn\tclient_conns_per_s\trss_kib\n' >"$TSV"
run_round() { # target round
    local t=$1 r=$2 before after out secs
    before=$(cpu_ticks "${PID[$t]}")
    out="$RUN/s_time-$t-$r.txt"
    # s_time runs for a time, not a count: give it time for CONNS and count
    # what it made (it prints "N connections in T real seconds").
    secs=$(((CONNS + 199) / 200))
    taskset -c 0 timeout $((secs + 30)) openssl s_time -connect "127.0.0.1:${PORT[$t]}" -new \
        -time "$secs" -www /bench/hello -cert "$PKI/client.crt" -key "$PKI/client.key" \
        -CAfile "$PKI/ca.crt" >"$out" 2>&1 || true
    after=$(cpu_ticks "${PID[$t]}")
    local made
    made=$(awk '/connections in .* real seconds/ {print $1; exit}' "$out")
    if [[ -z $made || $made == 0 ]]; then
        log "$t round $r: no connection made (see $out)"
        return 1
    fi
    local rate
    rate=$(awk '/connections in .* real seconds/ {printf "%.0f", $1 / $4; exit}' "$out")
    local us=$(((after - before) * 1000000 / TICKS / made))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$r" "$made" "$us" "$rate" "$(rss_kib "${PID[$t]}")" >>"$TSV"
    log "$t round $r: $made connections, ${us} us server CPU each, client rate ${rate}/s"
}
for r in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do run_round "$t" "$r"; done
done

# ------------------------------------------------------------------ summary
{
    echo "| server (TLS 1.3, client certificate required, no resumption) | server CPU µs per new connection + 1 request (median of $ROUNDS) | rounds | client connections/s | RSS KiB |"
    echo "| --- | ---: | --- | ---: | ---: |"
    for t in $TARGETS; do
        us=$(awk -F'\t' -v t="$t" 'NR > 1 && $1 == t {print $4}' "$TSV" | sort -n)
        rate=$(awk -F'\t' -v t="$t" 'NR > 1 && $1 == t {print $5}' "$TSV" | sort -n)
        n=$(echo "$us" | wc -l)
        m=$(((n + 1) / 2))
        rss=$(awk -F'\t' -v t="$t" 'NR > 1 && $1 == t {r = $6} END {print r}' "$TSV")
        printf '| %s | %s | %s | %s | %s |\n' "$t" "$(echo "$us" | sed -n "${m}p")" \
            "$(echo "$us" | paste -sd/ | sed 's|/| / |g')" "$(echo "$rate" | sed -n "${m}p")" "$rss"
    done
} | tee "$RUN/summary.md"
log "raw outputs in $RUN"
exit 0
}
