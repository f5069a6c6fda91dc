#!/usr/bin/env python3
"""Loopback helpers of bench/callgrind.sh and bench/memory.sh: an upstream, a
request driver and an idle-connection holder, on plain sockets so these
modes need no build.

  loopback.py serve PORT [PORT...]
      Answers every HTTP/1.1 request on 127.0.0.1:PORT with 200 and a fixed
      1 KiB body, keep-alive, one thread per connection. Request bodies
      (Content-Length or chunked, e.g. OTLP/HTTP trace exports) are read and
      dropped. Runs until killed.

  loopback.py drive PORT REQUESTS [HEADER...]
      Sends REQUESTS keep-alive `GET /bench/hello` one after the other on one
      connection (reconnecting if the proxy closes it), checks each answer is
      200 with the 1 KiB body, and prints `ok N` or exits 1 on the first bad
      answer. One connection and no pipelining: the figure is the cost of a
      request with nothing to batch it with, the same on every run.

  loopback.py hold PORT CONNS SECS [HEADER...]
      Opens CONNS keep-alive connections, sends one `GET /bench/hello` on each
      (all sent before any answer is read, so the proxy has them in flight
      together and opens upstream connections for them), reads every answer,
      prints `holding N` and keeps them open and silent for SECS seconds.
"""

import socket
import sys
import threading

BODY = b"x" * 1024
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1024\r\n\r\n"
    + BODY
)
PATH = "/bench/hello"


class Conn:
    """A buffered reader over one socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def body(self, headers):
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return
                self.exactly(size + 2)
        n = int(headers.get("content-length", "0"))
        return self.exactly(n)


def parse_head(head):
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def serve_conn(sock):
    conn = Conn(sock)
    try:
        while True:
            _, headers = parse_head(conn.head())
            conn.body(headers)
            sock.sendall(RESPONSE)
            if headers.get("connection", "").lower() == "close":
                return
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


def serve(ports):
    listeners = []
    for port in ports:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(1024)
        listeners.append(ls)

    def accept(ls):
        while True:
            sock, _ = ls.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_conn, args=(sock,), daemon=True).start()

    threads = [threading.Thread(target=accept, args=(ls,), daemon=True) for ls in listeners]
    for t in threads:
        t.start()
    print("serving", flush=True)
    for t in threads:
        t.join()


def drive(port, requests, extra_headers):
    req = "GET {} HTTP/1.1\r\nhost: {}\r\n{}\r\n".format(
        PATH,
        next((h.split(":", 1)[1].strip() for h in extra_headers if h.lower().startswith("host:")), "127.0.0.1"),
        "".join(h + "\r\n" for h in extra_headers if not h.lower().startswith("host:")),
    ).encode()
    conn = None
    done = 0
    reconnects = 0
    while done < requests:
        if conn is None:
            if reconnects > 100:
                print("too many reconnects", file=sys.stderr)
                sys.exit(1)
            s = socket.create_connection(("127.0.0.1", port), timeout=120)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(s)
            reconnects += 1
        try:
            conn.sock.sendall(req)
            status, headers = parse_head(conn.head())
            body = conn.body(headers)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            conn.sock.close()
            conn = None
            continue
        if not status.startswith("HTTP/1.1 200") or body != BODY:
            print("bad answer after {} requests: {} {!r}".format(done, status, body[:200]), file=sys.stderr)
            sys.exit(1)
        done += 1
        if headers.get("connection", "").lower() == "close":
            conn.sock.close()
            conn = None
    print("ok {} ({} connections)".format(done, reconnects), flush=True)


def hold(port, conns, secs, extra_headers):
    import time

    req = "GET {} HTTP/1.1\r\nhost: 127.0.0.1\r\n{}\r\n".format(
        PATH, "".join(h + "\r\n" for h in extra_headers)
    ).encode()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        socks.append(s)
    for s in socks:
        s.sendall(req)
    ok = 0
    for s in socks:
        conn = Conn(s)
        status, headers = parse_head(conn.head())
        conn.body(headers)
        ok += status.startswith("HTTP/1.1 200")
    print("holding {} ({} answered 200)".format(len(socks), ok), flush=True)
    time.sleep(secs)
    for s in socks:
        s.close()


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "serve":
        serve([int(p) for p in args[1:]])
    elif len(args) >= 4 and args[0] == "hold":
        hold(int(args[1]), int(args[2]), float(args[3]), args[4:])
    elif len(args) >= 3 and args[0] == "drive":
        drive(int(args[1]), int(args[2]), args[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
