"""``python -m serve deploy | undeploy``: deploy ``serve/config.yaml`` on the local cluster,
optionally with another port, other models or adapters, and wait until it runs.

    python -m serve deploy                                   # the config as it is
    python -m serve deploy --model smollm2-135m-instruct=smollm2-135m-instruct \
        --adapter masterclass=runs/masterclass/adapter       # served as ...-instruct:masterclass
    python -m serve undeploy
    python -m serve deploy --address http://10.10.0.10:8265 --config /tmp/serve-onprem.yaml

Ray's own ``serve deploy serve/config.yaml`` deploys the file unchanged; this command is the
same REST call with overrides, so no YAML needs editing for a one-off adapter. Without
``--address`` it deploys to RAY_API_SERVER_ADDRESS, else to the local cluster; the token comes
from RAY_AUTH_TOKEN_PATH (cluster/address.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlsplit

from cluster.address import ADDRESS_HELP, resolve
from cluster.local import ClusterError
from serve.deploy import CONFIG, deploy, load_config, undeploy, wait_running, with_overrides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy", help="deploy serve/config.yaml (with overrides)")
    d.add_argument("--config", default=str(CONFIG))
    d.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("ONPREM_SERVE_PORT", 0)) or None,
        help="HTTP port (default: the config's; env ONPREM_SERVE_PORT)",
    )
    d.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID=SOURCE",
        help="serve model SOURCE (store name or folder) as ID, configured like the config's "
        "first model (replaces the config's models)",
    )
    d.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve this LoRA adapter of the first model as <model id>:NAME (replaces the "
        "config's adapters)",
    )
    d.add_argument("--timeout", type=float, default=600)
    d.add_argument("--address", help=ADDRESS_HELP)
    u = sub.add_parser("undeploy", help="delete every Serve app on the cluster")
    u.add_argument("--address", help=ADDRESS_HELP)
    a = p.parse_args(argv)
    try:
        cluster = resolve(a.address)
        problem = cluster.problem()
        if problem:
            raise ClusterError(problem)
        if a.cmd == "undeploy":
            undeploy(cluster)
            print("Serve apps deleted")
            return 0
        for flag, values, form in (
            ("--model", a.model, "ID=SOURCE"),
            ("--adapter", a.adapter, "NAME=PATH"),
        ):
            bad = [x for x in values if "=" not in x]
            if bad:
                p.error(f"{flag} takes {form} (got {bad[0]!r})")
        cfg = with_overrides(
            load_config(a.config),
            port=a.port,
            models=dict(x.split("=", 1) for x in a.model) or None,
            adapters=dict(x.split("=", 1) for x in a.adapter) or None,
        )
        deploy(cluster, cfg)
        app = cfg["applications"][0]
        wait_running(cluster, app["name"], timeout_s=a.timeout)
    except (ClusterError, RuntimeError, TimeoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    port = cfg.get("http_options", {}).get("port", 8000)
    host = urlsplit(cluster.dashboard_url).hostname  # Serve's proxy runs on the head
    models = [
        f"{mid}{':' + name if name else ''}"
        for c in app["args"]["llm_configs"]
        for mid in [c["model_loading_config"]["model_id"]]
        for name in ["", *(c.get("adapters") or {})]
    ]
    print(f"app {app['name']} running: http://{host}:{port}/v1 serving {', '.join(models)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
