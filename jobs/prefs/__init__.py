"""The preference stage after a fine-tune (DPO with TRL under Ray Train): ``python -m
jobs.preference``."""
