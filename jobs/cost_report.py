"""API, rent or own: the team's demand served by an on-prem fleet, by AWS (every option billed
the way AWS bills it) or by the cloud API, with ranges (Monte Carlo) and what flips the verdict.

    python -m jobs.cost_report --config jobs/configs/cost/demo.yaml
    python -m jobs.cost_report --config jobs/configs/cost/onprem.yaml --pricing live
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m jobs.cost_report --config jobs/configs/cost/onprem.yaml

Reads the node inventory (cluster/inventory.yaml), the usage ledger, a serving benchmark and
AWS prices: on-demand, Reserved Instances, Savings Plans, Capacity Blocks and spot (the shipped
snapshot by default; with ``--pricing live`` boto3 pulls them and caches them, falling back to
the cache, then the snapshot). Runs in-process, no Ray needed. Writes reports/cost/<date>/:
report.md, report.html, charts, CSVs, summary.json.
Exit codes: 0 done, 1 failed while running, 2 bad config or input.
"""

from __future__ import annotations

import logging
import sys

from cluster import paths
from cluster.config import ConfigError, cli_config
from cluster.logs import setup_logging
from cluster.usage import track
from jobs.cost.analysis import analyze
from jobs.cost.config import CostConfig
from jobs.cost.report import write_report
from jobs.cost.run import preflight

log = logging.getLogger("jobs.cost_report")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = cli_config(CostConfig, "API, rent or own: the team's demand priced three ways.", argv)
    # the command line that would fill missing prices: this one with pricing=live
    args, kept = list(sys.argv[1:] if argv is None else argv), []
    while args:
        arg = args.pop(0)
        if arg == "--pricing" and args:
            args.pop(0)
        elif not arg.lstrip("-").startswith("pricing="):
            kept.append(arg)
    command = " ".join(["python -m jobs.cost_report", *kept])
    try:
        inputs = preflight(cfg, command=command)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info("prices: %s", inputs.book.label())
    log.info("ledger: %d usage rows, %s", len(inputs.rows), inputs.period.label())
    name = cfg.name or inputs.now.strftime("%Y-%m-%d")
    try:
        with track("cost", name, meta={"fleet": cfg.fleet, "pricing": inputs.book.source}) as run:
            result = analyze(inputs)
            folder = write_report(result, paths.reports_dir() / "cost", inputs.sources)
            run.meta.update(report=str(folder))
    except Exception:
        log.exception("the cost report failed; the previous report (if any) is unchanged")
        return 1
    log.info("%s", result["verdict"]["en"])
    log.info("report: %s", folder / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
