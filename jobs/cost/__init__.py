"""The cost and capacity-planning library behind ``python -m jobs.cost_report``.

What each module decides, all pure except the two edges (``aws`` talks to AWS with boto3,
``report`` writes files):

- ``config``       the job's schema (``CostConfig``, API prices, scenarios) and its checks
- ``prices``       the AWS price book (snapshot, cache or live pull): every option, its source
- ``pricelist``    parse the Price List Query API's ``PriceList`` strings (on-demand, RI)
- ``aws``          pull prices with boto3; fall back to the cache, then the snapshot
- ``equivalence``  which AWS instance carries each on-prem GPU model; prices per GPU-hour
- ``usage``        GPU-, CPU- and node-hours from the ledger; provisioned hours
- ``tco``          owning vs renting: node costs, commitments, cheapest option, break-even
- ``bench``        read ``bench.json``; p95 latency; the operating point under an SLO
- ``capacity``     replicas, GPUs and nodes month by month for a growing load
- ``analysis``     fleet, per-token, sensitivity and measured views (numbers and frames)
- ``tables``, ``charts``, ``report``   DataFrames for display, PNG charts, Jinja2 templates
  (``templates/``) rendered to Markdown and HTML, CSVs and ``summary.json``
- ``run``          preflight (every input checked before any work) and the run itself
"""
