"""The bare-metal cluster and the Kubernetes Serve config, generated from what is committed: the
Ray cluster-launcher config ``cluster/onprem.yaml`` and the manual commands of
``docs/onprem.md`` from the ``onprem`` fleet of ``cluster/inventory.yaml`` (both built from the
commands in cluster/fleet.py), and ``k8s/base/rayservice.yaml``'s ``serveConfigV2`` from
``serve/config.yaml``. Tests fail when a generated file is stale.

    python -m cluster render-onprem [--fleet onprem] [--out cluster/onprem.yaml] [--check]
    ray up cluster/onprem.yaml                            # from the repo root (docs/onprem.md)
    python -m cluster.onprem start-command --node h100-01 # one node's exact `ray start`
    python -m cluster.onprem node-start --fleet onprem    # what every worker runs under `ray up`
    python -m cluster.onprem serve-config --target onprem # serve/config.yaml for the fleet
    python -m cluster.onprem k8s-serve [--check]          # refresh k8s/base/rayservice.yaml
    python -m cluster.onprem docs [--check]               # refresh docs/onprem.md's commands
    python -m cluster.onprem serve-8b [--check]           # serve/configs/llama3_8b_*.yaml
    python -m cluster.onprem wait-models                  # until serve/config.yaml's models exist

The local provider runs one worker start command on every worker, but the workers differ
(8xH100, 4xL40S). So each worker runs ``node-start``: it finds itself in the inventory by its
own addresses, checks the inventory against ``nvidia-smi`` (model and count; the inventory is
what the cost report bills, so a mismatch stops the node instead of skewing the bill) and runs
the explicit ``ray start`` that ``fleet.ray_start_args`` builds, the same one the docs print.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from cluster.config import ConfigError
from cluster.fleet import (
    PROJECT_DIR,
    PROJECT_FILES,
    OnpremSettings,
    exports,
    fleet_problems,
    head_setup_commands,
    install_command,
    mount_check,
    node_env,
    ray_start_args,
    source_secrets,
    workstation_commands,
)
from cluster.inventory import DEFAULT_PATH as INVENTORY
from cluster.inventory import Inventory, Node, load_inventory

REPO = Path(__file__).resolve().parents[1]
ONPREM_YAML = Path(__file__).with_name("onprem.yaml")
ONPREM_DOCS = REPO / "docs" / "onprem.md"
__all__ = ["PROJECT_FILES", "OnpremSettings", "node_env", "ray_start_args", "render_onprem"]


def render_onprem(inv: Inventory, settings: OnpremSettings | None = None) -> dict[str, Any]:
    """The cluster-launcher config (``provider: type: local``) for a fleet. Pure."""
    settings = settings or OnpremSettings()
    problems = fleet_problems(inv)
    if problems:
        raise ConfigError(f"fleet {inv.fleet}", problems)
    head, workers = inv.head, [n for n in inv.nodes if n.role == "worker"]
    bin_ = f"{PROJECT_DIR}/.venv/bin"
    # Unquoted on purpose: `~` must expand; `ray up` writes the autoscaler config there.
    head_start = (
        f"{bin_}/ray {shlex.join(ray_start_args(inv, head, settings)[1:])}"
        " --autoscaling-config=~/ray_bootstrap_config.yaml"
    )
    return {
        "cluster_name": f"onprem-llm-{inv.fleet}",
        "provider": {
            "type": "local",
            "head_ip": head.address,
            "worker_ips": [n.address for n in workers],
        },
        "auth": {"ssh_user": settings.ssh_user, "ssh_private_key": settings.ssh_private_key},
        "min_workers": len(workers),
        "max_workers": len(workers),
        "file_mounts": {f"{PROJECT_DIR}/{name}": f"./{name}" for name in PROJECT_FILES},
        "rsync_exclude": ["__pycache__", "*.pyc"],
        "setup_commands": [mount_check(settings), install_command(settings)],
        "head_setup_commands": head_setup_commands(settings),
        "worker_setup_commands": [],
        "head_start_ray_commands": [
            f"{bin_}/ray stop",
            " && ".join(
                [source_secrets(settings), exports(node_env(inv, head, settings)), head_start]
            ),
        ],
        "worker_start_ray_commands": [
            f"{bin_}/ray stop",
            f"{source_secrets(settings)} && cd {PROJECT_DIR} && {bin_}/python -m cluster.onprem"
            f" node-start --fleet {inv.fleet} --root {settings.root}",
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Long commands and any string with ``": "`` as ``>-`` block scalars (readable, and the
    field-notes trap of a ``": "`` turning a list item into a mapping cannot happen)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if (": " in value or len(value) > 80) and "\n" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_onprem(inv: Inventory, settings: OnpremSettings | None = None) -> str:
    """``cluster/onprem.yaml``'s text: a header that says what each worker declares, then YAML."""
    settings = settings or OnpremSettings()
    config = render_onprem(inv, settings)
    lines = [
        f"# GENERATED from cluster/inventory.yaml (fleet {inv.fleet}) by",
        f"#   python -m cluster render-onprem --fleet {inv.fleet}",
        "# Edit the inventory or cluster/onprem.py, not this file: a test fails when it is stale.",
        "#",
        "#   ray up cluster/onprem.yaml      # from the repo root; see docs/onprem.md",
        "#",
        "# Every worker runs `python -m cluster.onprem node-start`, which finds the node in the",
        "# inventory by its own address, checks the GPUs with nvidia-smi and starts Ray with:",
    ]
    for node in inv.nodes:
        if node.role == "worker":
            lines.append(
                f"#   {node.name} ({node.address}): --num-cpus={node.cpus}"
                f" --num-gpus={node.gpu_count} accelerator_type:{node.accelerator_type}"
                f" onprem/node={node.name}"
            )
    body = yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=96)
    return "\n".join(lines) + "\n" + body


def write_onprem(out: Path = ONPREM_YAML, fleet: str = "onprem", check: bool = False) -> bool:
    """Write (or with ``check`` only compare) the config; True when the file was up to date."""
    text = dump_onprem(load_inventory(INVENTORY, fleet=fleet))
    current = out.read_text() if out.is_file() else None
    if not check and current != text:
        out.write_text(text)
    return current == text


def _wrap(words: list[str], width: int = 92) -> str:
    lines = [""]
    for word in map(shlex.quote, words):
        if lines[-1] and len(lines[-1]) + len(word) > width:
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + word
    return " \\\n    ".join(lines)


def manual_commands(inv: Inventory, node: Node, settings: OnpremSettings) -> str:
    """What to type on one node to start it by hand, as the launcher would (docs/onprem.md)."""
    return "\n".join(
        [
            f"# {node.name} ({node.address}), in {PROJECT_DIR} with its .venv activated",
            source_secrets(settings),
            exports(node_env(inv, node, settings), sep=" \\\n    "),
            "ray stop",
            _wrap(ray_start_args(inv, node, settings)),
        ]
    )


def manual_blocks(inv: Inventory, settings: OnpremSettings | None = None) -> dict[str, str]:
    """The bash blocks of docs/onprem.md that start a fleet by hand and reach it, each built from
    the same functions as ``cluster/onprem.yaml``: name -> the block's lines."""
    settings = settings or OnpremSettings()
    return {
        "install": "\n".join(
            [
                mount_check(settings),
                install_command(settings),
                f"source {PROJECT_DIR}/.venv/bin/activate",
            ]
        ),
        "head-setup": "\n".join(head_setup_commands(settings)),
        "start": "\n".join(manual_commands(inv, node, settings) for node in inv.nodes),
        "workstation": "\n".join(workstation_commands(inv, settings)),
    }


_BLOCK = re.compile(
    r"(<!-- generated: python -m cluster\.onprem docs \((?P<name>[\w-]+)\) -->\n```bash\n)"
    r"(?P<body>.*?)(?=```\n<!-- end generated -->)",
    re.S,
)


def render_docs(text: str, inv: Inventory, settings: OnpremSettings | None = None) -> str:
    """``text`` (docs/onprem.md) with every generated block rewritten; every block must appear."""
    blocks = manual_blocks(inv, settings)
    found = [m.group("name") for m in _BLOCK.finditer(text)]
    if sorted(found) != sorted(blocks):
        raise ValueError(f"docs/onprem.md has generated blocks {found}, expected {list(blocks)}")
    return _BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")] + "\n", text)


def write_docs(path: Path = ONPREM_DOCS, fleet: str = "onprem", check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the generated blocks; True when up to date."""
    current = path.read_text()
    text = render_docs(current, load_inventory(INVENTORY, fleet=fleet))
    if not check and text != current:
        path.write_text(text)
    return text == current


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.onprem",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    render = sub.add_parser("render-onprem", help="write cluster/onprem.yaml from the inventory")
    render.add_argument("--fleet", default="onprem")
    render.add_argument("--out", type=Path, default=ONPREM_YAML)
    render.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    start = sub.add_parser("start-command", help="print one node's exact `ray start`")
    start.add_argument("--fleet", default="onprem")
    start.add_argument("--node", help="node name (default: every node)")
    start.add_argument("--root", default=OnpremSettings.root)
    ns = sub.add_parser("node-start", help="on a node: check the GPUs and start Ray")
    ns.add_argument("--fleet", default="onprem")
    ns.add_argument("--root", default=OnpremSettings.root)
    ns.add_argument("--dry-run", action="store_true", help="check and print, do not start")
    sc = sub.add_parser("serve-config", help="print serve/config.yaml adjusted for a target")
    sc.add_argument("--target", choices=["onprem", "k8s"], default="onprem")
    sc.add_argument("--fleet", default="onprem")
    k8s = sub.add_parser("k8s-serve", help="refresh serveConfigV2 in k8s/base/rayservice.yaml")
    k8s.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    s8b = sub.add_parser("serve-8b", help="write the 8B Serve configs for the fleet's GPU types")
    s8b.add_argument("--fleet", default="onprem")
    s8b.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    wait = sub.add_parser("wait-models", help="wait until a Serve config's models are stored")
    wait.add_argument("--config", type=Path, default=REPO / "serve" / "config.yaml")
    wait.add_argument("--timeout", type=float, help="seconds (default: wait for ever)")
    docs = sub.add_parser("docs", help="refresh the manual commands in docs/onprem.md")
    docs.add_argument("--fleet", default="onprem")
    docs.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "wait-models":
            from cluster.serve_configs import wait_for_models

            missing = wait_for_models(yaml.safe_load(args.config.read_text()), args.timeout)
            print("\n".join(missing) or f"every model of {args.config} is in the store")
            return 1 if missing else 0
        if args.cmd in ("render-onprem", "k8s-serve", "docs", "serve-8b"):
            if args.cmd == "render-onprem":
                path, fresh = args.out, write_onprem(args.out, args.fleet, check=args.check)
            elif args.cmd == "docs":
                path, fresh = ONPREM_DOCS, write_docs(fleet=args.fleet, check=args.check)
            elif args.cmd == "serve-8b":
                from cluster.serve_configs import write_serve_8b

                path, fresh = (
                    "serve/configs/llama3_8b_*.yaml",
                    write_serve_8b(args.fleet, args.check),
                )
            else:
                from cluster.serve_configs import RAYSERVICE, write_rayservice

                path, fresh = RAYSERVICE, write_rayservice(check=args.check)
            print(f"{path}: {'up to date' if fresh else 'STALE' if args.check else 'written'}")
            return 1 if args.check and not fresh else 0
        settings = OnpremSettings(root=getattr(args, "root", OnpremSettings.root))
        if args.cmd == "node-start":
            from cluster.node_start import node_start

            return node_start(args.fleet, settings, dry_run=args.dry_run)
        inv = load_inventory(INVENTORY, fleet=args.fleet)
        if args.cmd == "start-command":
            for node in inv.nodes:
                if args.node in (None, node.name):
                    print(manual_commands(inv, node, settings))
        elif args.cmd == "serve-config":
            from cluster.serve_configs import SERVE_CONFIG, serve_config

            base = yaml.safe_load(SERVE_CONFIG.read_text())
            config = serve_config(base, args.target, head_ip=inv.head.address)
            print(yaml.safe_dump(config, sort_keys=False, width=96), end="")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
