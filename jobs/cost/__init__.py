"""The cost library behind ``python -m jobs.cost_report``: API, rent or own, for the team's demand.

What each module decides, all pure except the two edges (``aws`` talks to AWS with boto3,
``report`` writes files):

- ``config``       the job's schema (workload, scenarios, ranges, ...) and its checks
- ``prices``, ``pricelist``, ``aws``   the AWS price book: snapshot, cache or live pull
- ``instances``    the cheapest instance that holds each replica shape
- ``demand``       throughput per GPU (measured, configured or derived) and replicas per month
- ``billing``      how AWS bills each option, as monthly cash flows; present value
- ``tco``          the owned side: running costs, capex, depreciation and resale
- ``model``        owning, renting and the API for one set of inputs (vectorised)
- ``montecarlo``   ranges: P10/P50/P90, the tornado, break-even volume
- ``usage``, ``bench``, ``sources``   the ledger, a benchmark, the inventory's source tags
- ``run``          preflight (every input checked before any work); ``analysis`` the numbers
- ``tables``, ``charts``, ``report``   DataFrames for display, PNG charts, Jinja2 templates
  (``templates/``) rendered to Markdown and HTML, CSVs and ``summary.json``
"""
