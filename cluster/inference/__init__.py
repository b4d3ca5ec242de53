"""Model runtime shared by the evaluation job and the Serve app: loading a model (and LoRA
adapters) from the model store or a run, and a continuous-batching generation engine, so that
serving and in-process evaluation run the very same generation code."""
