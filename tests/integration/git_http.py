"""A private git host on loopback: git's smart HTTP protocol over HTTPS with basic auth.

github.com cannot be reached from the tests, so this speaks what it speaks for a clone:
`git http-backend` (git's own CGI program) behind Python's HTTP server, TLS with a
self-signed certificate that git is told to trust (GIT_SSL_CAINFO), and HTTP basic auth
that accepts one token as the user name or as the password (`https://TOKEN@host/...`, as
prefect-github sends it, or `https://user:TOKEN@host/...`). Every request line it served
is kept in `requests`, so a test can look for a token in what reached the host.
"""

from __future__ import annotations

import base64
import http.server
import os
import ssl
import subprocess
import threading
from pathlib import Path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (certificate, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class GitHttpServer:
    """Serves the bare repositories under `root` at https://127.0.0.1:PORT/<name>.git."""

    def __init__(self, root: Path, token: str, certificates: Path) -> None:
        self.root, self.token = root, token
        self.requests: list[str] = []
        self.cert, key = make_certificate(certificates)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                server.requests.append(format % args)

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return False
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return server.token in (user, password)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                if not self._authorised():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self._body() if self.command == "POST" else b""
                environment = {
                    **os.environ,
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_USER": "git",
                    "REMOTE_ADDR": "127.0.0.1",
                }
                answer = subprocess.run(
                    ["git", "http-backend"], input=body, env=environment, capture_output=True,
                    check=False,
                ).stdout  # fmt: skip
                head, _, payload = answer.partition(b"\r\n\r\n")
                headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if line]
                status = next((int(v.split()[0]) for k, v in headers if k == "Status"), 200)
                self.send_response(status)
                for name, value in headers:
                    if name != "Status":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
