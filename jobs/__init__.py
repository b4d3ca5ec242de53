"""Batch workloads, each run with ``ray job submit ... -- python -m jobs.<name> --config ...``
(or directly with ``python -m jobs.<name>``). Entrypoints are the ``jobs/<name>.py`` modules;
the library code they use lives in ``cluster`` and in the sub-packages here.
"""
