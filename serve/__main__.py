"""``python -m serve deploy | undeploy``: deploy ``serve/config.yaml`` on the local cluster,
optionally with another port, model or adapters, and wait until it runs.

    python -m serve deploy                                   # the config as it is
    python -m serve deploy --adapter masterclass=runs/masterclass/adapter --port 8000
    python -m serve undeploy

Ray's own ``serve deploy serve/config.yaml`` deploys the file unchanged; this command is the
same REST call with overrides, so no YAML needs editing for a one-off adapter.
"""

from __future__ import annotations

import argparse
import os
import sys

from cluster.local import ClusterError, LocalCluster
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
    d.add_argument("--model", help="base model (store name or folder)")
    d.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve this LoRA adapter as model NAME (replaces the config's)",
    )
    d.add_argument("--timeout", type=float, default=600)
    sub.add_parser("undeploy", help="delete every Serve app on the cluster")
    a = p.parse_args(argv)
    cluster = LocalCluster.from_env()
    try:
        if a.cmd == "undeploy":
            undeploy(cluster)
            print("Serve apps deleted")
            return 0
        args = {}
        if a.model:
            args["model"] = args["served_model_name"] = a.model
        if a.adapter:
            bad = [x for x in a.adapter if "=" not in x]
            if bad:
                p.error(f"--adapter takes NAME=PATH (got {bad[0]!r})")
            args["adapters"] = dict(x.split("=", 1) for x in a.adapter)
        cfg = with_overrides(load_config(a.config), port=a.port, args=args)
        deploy(cluster, cfg)
        app = cfg["applications"][0]
        wait_running(cluster, app["name"], timeout_s=a.timeout)
    except (ClusterError, RuntimeError, TimeoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    port = cfg.get("http_options", {}).get("port", 8000)
    models = [
        app["args"].get("served_model_name") or app["args"]["model"],
        *app["args"].get("adapters", {}),
    ]
    print(f"app {app['name']} running: http://127.0.0.1:{port}/v1 serving {', '.join(models)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
