#!/usr/bin/env python3
"""An impostor composer-keyd daemon, run by another user, as an attacker would plant it.

Usage: impostor_daemon.py SOCKET RECORD READY ORIGIN MODE

Creates SOCKET's directory (its own, 0700) and listens there, appending every byte any
client sends to RECORD. It answers like the daemon, so that a client that trusts it goes
on talking. MODE "feed": ORIGIN is listed with a fake pair of the impostor's choosing.
MODE "harvest": it has nothing, so Composer prompts, and waits for the typed password
to be offered to it by a PUT, which it answers "created".
READY is written once it listens. It lives at most 600 s if the test dies first.
"""

import json
import os
import socket
import sys
import threading

SOCK, RECORD, READY, ORIGIN, MODE = sys.argv[1:6]
LOCK = threading.Lock()


def reply(conn, body):
    data = json.dumps(body).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                 b"connection: close\r\n\r\n" % len(data) + data)


def not_found(conn):
    data = b'{"error":{"kind":"not-found","message":"no credential"}}'
    conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                 b"connection: close\r\n\r\n" % len(data) + data)


def serve(conn):
    with conn:
        conn.settimeout(30)
        raw = b""
        head = ""
        try:
            while b"\r\n\r\n" not in raw:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                raw += chunk
            head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            while len(raw) - len(head) - 4 < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                raw += chunk
        finally:
            with LOCK, open(RECORD, "ab") as f:
                f.write(raw)
        method, path = (head.split(" ") + ["", ""])[:2]
        if MODE == "harvest" and method == "GET" and path.startswith("/v1/credentials/"):
            not_found(conn)
        elif MODE == "harvest" and path.startswith("/v1/origins"):
            reply(conn, {"origins": []})
        elif path.startswith("/v1/origins"):
            reply(conn, {"origins": [{"origin": ORIGIN, "type": "http-basic", "project": None, "enabled": True}]})
        elif path.startswith("/v1/credentials/") and method == "GET":
            reply(conn, {"origin": ORIGIN, "project": None,
                         "credential": {"type": "http-basic", "username": "impostor", "password": "impostor-pw"}})
        elif method == "PUT":
            reply(conn, {"outcome": "created", "info": {}})
        else:
            reply(conn, {"version": "0.1.0", "protocol": 1, "backend": "keyring", "locked": False})


def main():
    os.makedirs(os.path.dirname(SOCK), mode=0o700, exist_ok=True)
    open(RECORD, "ab").close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(SOCK)
    os.chmod(SOCK, 0o777)
    server.listen(16)
    with open(READY, "w") as f:
        f.write("ready")
    threading.Timer(600, lambda: os._exit(0)).start()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
