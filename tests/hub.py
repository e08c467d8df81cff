"""A local stand-in for the Hugging Face Hub and GitHub, for the fetch tests (nothing leaves 127.0.0.1).

It serves the paths the real download code asks for: huggingface_hub's HEAD and GET of
`/datasets/{repo}/resolve/{revision}/{filename}` (with the headers the Hub sends: X-Repo-Commit,
X-Linked-Etag = the file's sha256, X-Linked-Size) and GitHub's `/{owner}/{repo}/archive/{ref}.zip`
(an archive whose entries sit under one top folder and whose comment is the commit). `break_next`
makes the next GET of a path send part of the body and drop the connection; later GETs of it get 503.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self):
        self.hf: dict[tuple[str, str], bytes] = {}  # (repo, filename) -> content
        self.archives: dict[str, bytes] = {}  # "owner/repo" -> zip
        self.break_next: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.broken: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path))
                self._respond(body=False)

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                self._respond(body=True)

            def _find(self) -> tuple[bytes, dict[str, str]] | None:
                parts = self.path.split("/")
                # /datasets/{owner}/{name}/resolve/{revision}/{filename}
                if (
                    len(parts) == 7
                    and parts[1] == "datasets"
                    and parts[4] == "resolve"
                    and parts[5] in ("main", COMMIT)
                ):
                    content = hub.hf.get((f"{parts[2]}/{parts[3]}", parts[6]))
                    if content is None:
                        return None
                    sha = hashlib.sha256(content).hexdigest()
                    return content, {
                        "X-Repo-Commit": COMMIT,
                        "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(len(content)),
                        "ETag": f'"{sha}"',
                    }
                # /{owner}/{repo}/archive/HEAD.zip
                if len(parts) == 5 and parts[3] == "archive" and parts[4] == "HEAD.zip":
                    content = hub.archives.get(f"{parts[1]}/{parts[2]}")
                    return None if content is None else (content, {"Content-Type": "application/zip"})
                return None

            def _respond(self, body: bool):
                found = self._find()
                if found is None or (body and self.path in hub.broken):
                    code = 404 if found is None else 503
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content, headers = found
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if not body:
                    return
                if self.path in hub.break_next:
                    self.wfile.write(content[: hub.break_next.pop(self.path)])
                    self.wfile.flush()
                    hub.broken.add(self.path)
                    self.close_connection = True
                    return
                self.wfile.write(content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def github_archive(repo: str, files: dict[str, object]) -> bytes:
    """A zip as GitHub's archive of `repo` makes it: entries under `<name>-<commit>/`, the commit as comment."""
    buffer = io.BytesIO()
    top = f"{repo.split('/')[1]}-{COMMIT}"
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for path, content in files.items():
            zf.writestr(f"{top}/{path}", content if isinstance(content, (bytes, str)) else json.dumps(content))
        zf.comment = COMMIT.encode()
    return buffer.getvalue()


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (connection refused: an offline machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
