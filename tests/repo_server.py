#!/usr/bin/python3
"""A Composer repository on loopback that demands HTTP basic auth, for composer-keyd's tests.

The accepted username and password come on stdin (one line each), never in argv. The port is
printed on stdout's first line. Every request is logged to stderr as "accepted" or "refused"
with its path, never with the credentials. `--tls CERT KEY` serves HTTPS.
"""

import argparse
import base64
import http.server
import json
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    user = sys.stdin.readline().rstrip("\n")
    password = sys.stdin.readline().rstrip("\n")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != expected:
                sys.stderr.write(f"refused {self.command} {self.path}\n")
                sys.stderr.flush()
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            sys.stderr.write(f"accepted {self.command} {self.path}\n")
            sys.stderr.flush()
            if self.path == "/packages.json":
                body = json.dumps({"packages": {}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:
                body = b""
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
