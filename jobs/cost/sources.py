"""Where each inventory figure comes from: the trailing ``# [tag] ...`` comments of
``cluster/inventory.yaml`` and the legend of tags in its header (pure text parsing).

    notes = inventory_sources(Path("cluster/inventory.yaml"))
    notes.site["pue"]                          # "[epoch]"
    notes.nodes[("onprem", "h100-01")]["purchase_usd"]   # "[quotes] middle of $270k-$317k"
    notes.legend["epoch"]                      # "Epoch AI, ... (training-cost-trends): ..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_KEY_COMMENT = re.compile(r"^\s*(?:-\s+)?(\w+):\s*(.*?)\s+#\s*(.+?)\s*$")
_LEGEND = re.compile(r"^#\s+\[(\w+)\]\s+(.*)$")
_LEGEND_MORE = re.compile(r"^#\s{6,}(\S.*)$")
_FLEET = re.compile(r"^  (\w[\w-]*):\s*$")
_NODE = re.compile(r"^\s*-\s+name:\s*([\w.-]+)")


@dataclass
class InventorySources:
    site: dict[str, str] = field(default_factory=dict)
    nodes: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    legend: dict[str, str] = field(default_factory=dict)

    def node(self, fleet: str, node: str, key: str) -> str:
        return self.nodes.get((fleet, node), {}).get(key, "")


def inventory_sources(path: Path) -> InventorySources:
    """The trailing comments per site key and per node key, and the header's tag legend."""
    out = InventorySources()
    section = fleet = node = None
    last_tag = None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            legend = _LEGEND.match(line)
            if legend:
                last_tag = legend.group(1)
                out.legend[last_tag] = legend.group(2).strip()
                continue
            more = _LEGEND_MORE.match(line)
            if more and last_tag:
                out.legend[last_tag] += " " + more.group(1).strip()
                continue
            last_tag = None
            continue
        if re.match(r"^\w", line):
            section = line.split(":", 1)[0]
            fleet = node = None
            continue
        if section == "fleets":
            match = _FLEET.match(line)
            if match:
                fleet, node = match.group(1), None
                continue
            match = _NODE.match(line)
            if match:
                node = match.group(1)
        comment = _KEY_COMMENT.match(line)
        if not comment:
            continue
        key, text = comment.group(1), comment.group(3)
        if section == "site":
            out.site[key] = text
        elif section == "fleets" and fleet and node:
            out.nodes.setdefault((fleet, node), {})[key] = text
    return out
