"""A stand-in for a remote head's Ray dashboard on loopback: enough of the Jobs, Serve and state
REST API (real response shapes, canned contents) for the operators' commands and Ray's own
``JobSubmissionClient`` / ``ServeSubmissionClient`` to run their real code paths against it,
with token authentication as Ray 2.60 does it (no token 401, a wrong one 403)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = {"ray_version": "2.60.0", "ray_commit": "0" * 40, "version": "4", "session_name": "s"}


def serve_details(app_config: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/serve/applications/`` for one running app with one model deployment."""
    model = app_config["args"]["llm_configs"][0]["model_loading_config"]["model_id"]
    replica = {"replica_id": "r1", "state": "RUNNING", "node_ip": "10.10.0.11"}
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "10.10.0.10", "port": 8000},
        "applications": {
            app_config["name"]: {
                "status": "RUNNING",
                "route_prefix": "/",
                "deployed_app_config": app_config,
                "deployments": {
                    f"LLMServer:{model}": {
                        "status": "HEALTHY",
                        "replicas": [replica],
                        "target_num_replicas": 1,
                        "deployment_config": {"num_replicas": 1},
                    }
                },
            }
        },
    }


NODE = {
    "node_id": "f" * 56,
    "node_ip": "10.10.0.10",
    "state": "ALIVE",
    "is_head_node": True,
    "resources_total": {"CPU": 32.0, "memory": 64 * 2**30},
    "labels": {"onprem/accelerator": "CPU"},
}


class FakeDashboard:
    """``with FakeDashboard(token, app_config) as dash: dash.url``; ``dash.requests`` lists
    ``(method, path, Authorization header)``; ``dash.deployed`` the bodies of Serve PUTs."""

    def __init__(self, token: str, app_config: dict[str, Any]):
        self.token = token
        self.details = serve_details(app_config)
        self.requests: list[tuple[str, str, str | None]] = []
        self.deployed: list[dict[str, Any]] = []
        routes = {
            "/api/version": VERSION,
            "/api/ray/version": VERSION,
            "/api/serve/applications/": self.details,
            "/nodes": {"data": {"summary": []}},
            "/api/v0/nodes": {"data": {"result": {"result": [NODE]}}},
            "/api/cluster_status": {
                "data": {"clusterStatus": {"loadMetricsReport": {"usage": {"CPU": [1.0, 32.0]}}}}
            },
            "/api/jobs/": [],
        }
        dash = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization")
                dash.requests.append((self.command, self.path, auth))
                if auth == f"Bearer {dash.token}":
                    return True
                self._reply(401 if auth is None else 403, {"error": "token"})
                return False

            def do_GET(self) -> None:
                if self._authorized():
                    path = self.path.split("?")[0]
                    found = path in routes
                    self._reply(200 if found else 404, routes.get(path, {}))

            def do_PUT(self) -> None:
                if self._authorized():
                    length = int(self.headers.get("Content-Length") or 0)
                    dash.deployed.append(json.loads(self.rfile.read(length)))
                    self._reply(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeDashboard:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
