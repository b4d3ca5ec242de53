"""The fine-tuning library behind ``python -m jobs.finetune``: config schema, chat data to
token batches, the DeepSpeed config, the per-worker training loop, checkpoints and outputs."""
