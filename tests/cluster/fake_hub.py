"""A tiny stand-in for the Hugging Face hub's HTTP API on loopback: enough of
``/api/models/<repo>/revision/<rev>`` and ``/<repo>/resolve/<rev>/<file>`` for huggingface_hub's
``model_info`` and ``snapshot_download`` to run their real code paths against it."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, folder: Path, revisions: tuple[str, ...] = ("main", SHA)):
        self.repo, self.folder, self.revisions = repo, folder, revisions
        self.requests: list[str] = []
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        files["README.md"] = b"# not a model file\n"
        self.files = files
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code, body=b"", headers=None, head=False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool):
                path = unquote(self.path.split("?")[0])
                hub.requests.append(f"{self.command} {path}")
                tree = f"/api/models/{hub.repo}/tree/"
                if path.startswith(tree):
                    rev = path[len(tree) :].strip("/")
                    if rev not in hub.revisions:
                        return self._send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, head)
                    entries = [
                        {
                            "type": "file",
                            "path": name,
                            "size": len(body),
                            "oid": hashlib.sha1(body).hexdigest(),
                        }
                        for name, body in sorted(hub.files.items())
                    ]
                    return self._send(
                        200,
                        json.dumps(entries).encode(),
                        {"Content-Type": "application/json"},
                        head,
                    )
                api = f"/api/models/{hub.repo}/revision/"
                resolve = f"/{hub.repo}/resolve/"
                if path.startswith(api):
                    rev = path[len(api) :]
                    if rev not in hub.revisions:
                        return self._send(
                            404,
                            json.dumps({"error": f"Invalid rev id: {rev}"}).encode(),
                            {
                                "X-Error-Code": "RevisionNotFound",
                                "Content-Type": "application/json",
                            },
                            head,
                        )
                    info = {
                        "id": hub.repo,
                        "modelId": hub.repo,
                        "sha": SHA,
                        "private": False,
                        "siblings": [{"rfilename": f} for f in sorted(hub.files)],
                    }
                    return self._send(
                        200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head
                    )
                if path.startswith(resolve):
                    rev, _, name = path[len(resolve) :].partition("/")
                    if rev not in hub.revisions or name not in hub.files:
                        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                    body = hub.files[name]
                    etag = hashlib.sha256(body).hexdigest()
                    return self._send(
                        200,
                        body,
                        {
                            "X-Repo-Commit": SHA,
                            "ETag": f'"{etag}"',
                            "Content-Type": "application/octet-stream",
                        },
                        head,
                    )
                return self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, head)

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
