#!/usr/bin/env python3
"""The remote side's client of a forwarded composer-keyd socket, run as the remote user over ssh.

Usage: ssh_client.py SOCKET MODE [ARGS...]; prints one JSON object per line.

  probe REQ...       each REQ "METHOD PATH" on a fresh connection: {"req", "status", "body"}
                     (status 0: the connection closed with no answer)
  hold ORIGIN DIR    GET ORIGIN on one connection, keep it open, touch DIR/held, wait (at most
                     60 s) for DIR/go, then report whether that connection was closed, and the
                     answer to a new request
  slowhead SECS      send half a request head, then wait up to SECS for the daemon to cut it:
                     {"closed", "elapsed"}
  slowbody SECS REQ  "METHOD PATH" with a Content-Length body sent a byte every 0.1 s for up
                     to SECS: {"status" (0: none), "closed", "elapsed"} (seconds until the
                     daemon closed the connection, or SECS when it did not)
  cap N ORIGIN       N connections, each answered once and left idle, then one more request;
                     which of the N were closed
"""

import json
import os
import socket
import sys
import time

SOCK = sys.argv[1]


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(SOCK)
    return s


def ask(s, method, path):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    try:
        s.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return 0, ""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(head.split(b" ")[1]), body.decode(errors="replace")
    except OSError:
        return 0, ""


def closed(s, wait=5.0):
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def fresh(method, path):
    try:
        s = connect()
    except OSError as e:
        return 0, f"connect: {e}"
    r = ask(s, method, path)
    s.close()
    return r


def out(**kw):
    print(json.dumps(kw), flush=True)


mode = sys.argv[2]
if mode == "probe":
    for req in sys.argv[3:]:
        m, p = req.split(" ", 1)
        status, body = fresh(m, p)
        out(req=req, status=status, body=body)
elif mode == "hold":
    origin, d = sys.argv[3], sys.argv[4]
    s = connect()
    status, _ = ask(s, "GET", f"/v1/credentials/{origin}")
    out(first=status)
    open(os.path.join(d, "held"), "w").close()
    for _ in range(600):
        if os.path.exists(os.path.join(d, "go")):
            break
        time.sleep(0.1)
    # Well within the daemon's idle deadline (the test sets it far away).
    out(closed=closed(s, 3.0))
    status, body = fresh("GET", f"/v1/credentials/{origin}")
    out(next=status, body=body)
elif mode == "slowhead":
    secs = float(sys.argv[3])
    s = connect()
    start = time.monotonic()
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: loc")
    shut = closed(s, secs)
    out(closed=shut, elapsed=round(time.monotonic() - start, 2))
elif mode == "slowbody":
    secs, (m, p) = float(sys.argv[3]), sys.argv[4].split(" ", 1)
    s = connect()
    start = time.monotonic()
    s.sendall(f"{m} {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n".encode())
    s.setblocking(False)
    got, shut = b"", False
    while not shut and time.monotonic() - start < secs:
        try:
            s.send(b"x")
        except BlockingIOError:
            pass
        except OSError:
            shut = True
        time.sleep(0.1)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    shut = True
                    break
                got += chunk
        except BlockingIOError:
            pass
        except OSError:
            shut = True
    elapsed = time.monotonic() - start
    status = int(got.split(b" ")[1]) if got.startswith(b"HTTP/1.1 ") else 0
    out(status=status, closed=shut, elapsed=round(elapsed, 2))
elif mode == "cap":
    n, origin = int(sys.argv[3]), sys.argv[4]
    conns = []
    for _ in range(n):
        s = connect()
        conns.append((s, ask(s, "GET", "/v1/status")[0]))
        time.sleep(0.2)
    extra = connect()
    status, _ = ask(extra, "GET", f"/v1/credentials/{origin}")
    out(first=[c[1] for c in conns], extra=status, closed=[closed(c[0], 1.5) for c in conns])
else:
    sys.exit(f"unknown mode {mode}")
