"""The cost and capacity-planning library behind ``python -m jobs.cost_report``.

What each module decides, all pure except the two edges (``aws`` talks to AWS with boto3,
``report`` writes files):

- ``config``       the job's schema (``CostConfig``) and its cross-field checks
- ``prices``       the AWS price book (snapshot, cache or live pull) and its JSON format
- ``pricelist``    parse the Price List Query API's ``PriceList`` strings
- ``aws``          pull prices with boto3; fall back to the cache, then the snapshot
- ``equivalence``  which AWS instance carries each on-prem GPU model; cloud price per GPU-hour
- ``usage``        GPU-, CPU- and node-hours from the ledger; provisioned hours; utilization
- ``tco``          on-prem hourly cost, setup and maintenance, cloud cost, savings, break-even
- ``bench``        read ``bench.json``; p95 latency; the operating point under an SLO
- ``capacity``     replicas, GPUs and nodes month by month for a growing load
- ``analysis``     put the pieces together into one result (numbers only)
- ``charts``, ``document``, ``report``   PNG charts, Markdown/HTML, CSV and ``summary.json``
- ``run``          preflight (every input checked before any work) and the run itself
"""
