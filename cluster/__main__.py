"""``python -m cluster up | down | status | env | submit | import-jobs | demo | render-onprem``:
the platform's cluster commands. ``status`` and ``submit`` reach any cluster (``--address``,
or RAY_API_SERVER_ADDRESS + RAY_AUTH_TOKEN_PATH; cluster/address.py); the others act on the
local one.

    python -m cluster status --address http://10.10.0.10:8265
    python -m cluster submit --address http://10.10.0.10:8265 -- \
        python -m jobs.pull_model --config jobs/configs/pull/smollm2.yaml
"""

from __future__ import annotations

import argparse
import shlex
import sys

from cluster.address import ADDRESS_HELP, AddressError, resolve
from cluster.local import ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["render-onprem"]:  # its own flags: see cluster/onprem.py
        from cluster.onprem import main as onprem_main

        return onprem_main(argv)
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the local Ray head (idempotent)")
    sub.add_parser("down", help="stop this cluster's processes (only this cluster)")
    status = sub.add_parser("status", help="nodes, resources, jobs and Serve apps")
    status.add_argument("--address", help=ADDRESS_HELP)
    sub.add_parser("env", help='print the exports a shell needs: eval "$(python -m cluster env)"')
    submit = sub.add_parser(
        "submit",
        help="ray job submit of a platform job, with the ledger's metadata and no secrets uploaded",
    )
    submit.add_argument("--address", help=ADDRESS_HELP)
    submit.add_argument("--no-wait", action="store_true", help="return once submitted")
    submit.add_argument("entrypoint", nargs="+", help="after --: python -m jobs.NAME ...")
    sub.add_parser("import-jobs", help="add jobs run by hand to the usage ledger")
    sub.add_parser(
        "demo",
        help="the whole pipeline on the local cluster (make demo); rewrites README.md's Results",
    )
    sub.add_parser(
        "render-onprem", help="write cluster/onprem.yaml from the inventory (docs/onprem.md)"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster.from_env()
    try:
        if args.cmd in ("status", "submit"):
            return _remote(args)
        if args.cmd == "up":
            info = cluster.up()
            if info["already_up"]:
                print(f"cluster already up: dashboard and Jobs API at {cluster.dashboard_url}")
            else:
                print(
                    f"cluster up in {info['start_seconds']} s: dashboard and Jobs API at "
                    f"{cluster.dashboard_url}, GCS port {cluster.gcs_port}, "
                    f"{cluster.num_cpus} CPUs, token auth on ({cluster.token_path})"
                )
            print('for the ray CLI in this shell: eval "$(python -m cluster env)"')
        elif args.cmd == "down":
            n = cluster.down()
            print(f"cluster down: stopped {n} processes" if n else "cluster was not running")
        elif args.cmd == "env":
            # Quoted for the shell that evals it: a root path holding $(...) stays a path.
            for key, value in cluster.client_env().items():
                print(f"export {key}={shlex.quote(value)}")
            if cluster.api_key_path.is_file():  # read when eval'd: the key is never printed
                print(f'export ONPREM_API_KEY="$(cat {shlex.quote(str(cluster.api_key_path))})"')
        elif args.cmd == "demo":
            from cluster.demo import main as demo

            return demo([])
        elif args.cmd == "import-jobs":
            from cluster.status import import_jobs

            print(f"imported {import_jobs(cluster)} finished jobs into the ledger")
    except (ClusterError, AddressError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _remote(args: argparse.Namespace) -> int:
    """``status`` and ``submit``: the commands that take a cluster's address."""
    target = resolve(args.address)
    if args.cmd == "status":
        from cluster.status import render_status

        print(render_status(target))
        return 3 if target.problem() else 0
    from cluster.ledger import kind_from_entrypoint
    from cluster.submit import submit

    problem = target.problem()
    if problem:
        raise ClusterError(problem)
    entry = args.entrypoint
    job = submit(target, entry, kind=kind_from_entrypoint(" ".join(entry)), stream=True)
    print(f"job {job.submission_id}: exit {job.returncode} in {job.seconds:.0f} s", flush=True)
    return 0 if job.ok else 1


if __name__ == "__main__":
    sys.exit(main())
