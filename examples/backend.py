#!/usr/bin/env python3
"""A tiny HTTP backend for the quickstart: `python3 examples/backend.py PORT`.

It answers the quickstart's health check (`GET /healthz` → `ok`) and every other GET with the
port that answered and the path it was asked for, so each curl shows which backend the load
balancer picked. Standard library only; listens on 127.0.0.1. Not a server for real traffic.
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a proxy's upstream pool expects

    def do_GET(self):
        if self.path == "/healthz":
            body = "ok\n"
        else:
            body = f"backend {self.server.server_port} answered GET {self.path}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # one line per health probe would drown the terminal


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A health checker may reset the connection once it has read the status line.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    port = int(sys.argv[1])
    Server(("127.0.0.1", port), Handler).serve_forever()
