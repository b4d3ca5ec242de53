"""The platform layer: local cluster, node inventory, model store, usage ledger and the shared
contracts (config loading, chat data) that jobs and the Serve app build on.

Nothing here imports `jobs` or `serve`.
"""
