#!/usr/bin/env python3
"""What an open dashboard page costs the gateway: CPU per request at a fixed
request rate with no dashboard page open and with one open (one stream on
/dashboard/events, which is what a page holds), rounds interleaved.

    python3 bench/dashboard_cost.py [--gateway target/release/gateway]
        [--rate 1000] [--seconds 15] [--rounds 3] [--connections 8]

Everything runs on loopback: a keep-alive upstream answering 200 with 1 KiB
(asyncio, in a child process), the gateway with bench/gateway-bench.yaml on
free ports (one worker thread, pinned to core 1 when there are two), and a
fixed-rate load of `GET /bench/hello` (asyncio, open loop: request k of a
connection is due at k / (rate / connections) seconds and sent late, never
skipped, when the gateway falls behind). CPU is utime + stime of the gateway
from /proc/<pid>/stat, read before and after each measured run. Every
process started is stopped by pid at exit; every run is bounded in time.
"""

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = b"x" * 1024
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: text/plain\r\n\r\n" % len(BODY) + BODY


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


# ---------------------------------------------------------------- upstream

async def serve_upstream(port):
    async def conn(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m:
                    await reader.readexactly(int(m.group(1)))
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- load

async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if m:
        await reader.readexactly(int(m.group(1)))
    return status


async def load(port, rate, seconds, connections):
    """Returns (completed, non-200) after `seconds` of `rate` requests/s."""
    req = (
        b"GET /bench/hello HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nx-api-key: bench-key\r\n\r\n" % port
    )
    interval = connections / rate
    start = time.monotonic() + 0.05
    end = start + seconds
    done = [0, 0]

    async def one(i):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        k = 0
        due = start + i * interval / connections
        while due < end:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(req)
            status = await read_response(reader)
            done[0] += 1
            if status != 200:
                done[1] += 1
            k += 1
            due = start + i * interval / connections + k * interval
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return done[0], done[1]


async def dashboard_stream(admin, frames):
    """Holds /dashboard/events open like a page does, counting frames."""
    reader, writer = await asyncio.open_connection("127.0.0.1", admin)
    writer.write(b"GET /dashboard/events HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n\r\n" % admin)
    await writer.drain()
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            frames[0] += chunk.count(b"event: state")
    finally:
        writer.close()


async def wait_ready(admin, deadline):
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", admin)
            writer.write(b"GET /readyz HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nconnection: close\r\n\r\n" % admin)
            data = await reader.read(64)
            writer.close()
            if data.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    sys.exit("the gateway did not become ready")


async def measure(pid, public, admin, args, page_open):
    frames = [0]
    stream = asyncio.create_task(dashboard_stream(admin, frames)) if page_open else None
    if stream:
        while frames[0] == 0:  # the page has its first frame
            await asyncio.sleep(0.01)
    await load(public, args.rate, 2, args.connections)  # warm-up
    before = cpu_ticks(pid)
    done, bad = await load(public, args.rate, args.seconds, args.connections)
    used = cpu_ticks(pid) - before
    if stream:
        stream.cancel()
    return used * 1e6 / CLK_TCK / max(done, 1), done, bad, frames[0]


async def idle_cost(pid, admin, seconds):
    """CPU per second of the gateway with a page open and no traffic."""
    frames = [0]
    stream = asyncio.create_task(dashboard_stream(admin, frames))
    await asyncio.sleep(1.5)
    before = cpu_ticks(pid)
    await asyncio.sleep(seconds)
    used = cpu_ticks(pid) - before
    stream.cancel()
    await asyncio.sleep(2)  # the sampler stops at its next tick
    before = cpu_ticks(pid)
    await asyncio.sleep(seconds)
    closed = cpu_ticks(pid) - before
    return used * 1e3 / CLK_TCK / seconds, closed * 1e3 / CLK_TCK / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = os.path.join(ROOT, "target", "release", "gateway")
    p.add_argument("--gateway", default=default_bin)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args()

    up, public, admin = free_port(), free_port(), free_port()
    work = tempfile.mkdtemp(prefix="weir-dashboard-bench-")
    with open(os.path.join(ROOT, "bench", "gateway-bench.yaml")) as f:
        cfg = f.read()
    cfg = (cfg.replace("127.0.0.1:18080", f"127.0.0.1:{up}")
              .replace("127.0.0.1:18081", f"127.0.0.1:{public}")
              .replace("127.0.0.1:18091", f"127.0.0.1:{admin}")
              .replace("../config/", os.path.join(ROOT, "config") + "/"))
    cfg_path = os.path.join(work, "gateway.yaml")
    with open(cfg_path, "w") as f:
        f.write(cfg)

    two_cores = len(os.sched_getaffinity(0)) >= 2
    pin = lambda core: ["taskset", "-c", str(core)] if two_cores else []
    procs = []
    try:
        upstream = subprocess.Popen(
            pin(0) + [sys.executable, "-c",
                      f"import asyncio,sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                      f"import dashboard_cost as d; asyncio.run(d.serve_upstream({up}))"])
        procs.append(upstream)
        env = dict(os.environ, WEIR_WORKER_THREADS="1", TOKIO_WORKER_THREADS="1")
        gw = subprocess.Popen(pin(1) + [args.gateway, "run", "--config", cfg_path], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "gateway.log"), "w"))
        procs.append(gw)
        if two_cores:
            os.sched_setaffinity(0, {0})
        asyncio.run(wait_ready(admin, time.monotonic() + 30))

        rows = {False: [], True: []}
        for r in range(args.rounds):
            for page_open in (False, True):
                us, done, bad, frames = asyncio.run(measure(gw.pid, public, admin, args, page_open))
                rows[page_open].append(us)
                print(f"round {r + 1} page {'open  ' if page_open else 'closed'}: "
                      f"{us:.1f} µs/req over {done} requests ({bad} not 200), {frames} frames",
                      flush=True)
        idle_open, idle_closed = asyncio.run(idle_cost(gw.pid, admin, 10))

        closed, opened = statistics.median(rows[False]), statistics.median(rows[True])
        print()
        print(f"gateway {args.gateway}, {args.rate} req/s over {args.connections} connections, "
              f"{args.seconds}s per run, median of {args.rounds} interleaved rounds")
        print()
        print("| dashboard page | gateway CPU µs/request |")
        print("| --- | --- |")
        print(f"| closed | {closed:.1f} |")
        print(f"| open (one stream) | {opened:.1f} ({(opened - closed) / closed * 100:+.1f}%) |")
        print()
        print(f"No traffic: {idle_open:.2f} ms CPU per second with a page open, "
              f"{idle_closed:.2f} ms/s once it closed.")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
