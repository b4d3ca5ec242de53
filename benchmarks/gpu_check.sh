#!/usr/bin/env bash
# The GPU path on a CUDA machine, as one short script: the fine-tune job (Ray Train + DeepSpeed
# ZeRO-2 and ZeRO-3, bf16, NCCL, PEFT LoRA) on one GPU with SmolLM2-135M's architecture, and a
# 1.7B-parameter model of the same family for a utilization (MFU) figure; tokens/s, MFU and
# losses from each run's result.json.
#
#   bash benchmarks/gpu_check.sh [KIT] [OUT]
#
# KIT: a folder of wheels to install first with --no-index (for a machine without internet
# whose Python lacks Ray, DeepSpeed, pydantic, SQLAlchemy); OUT: where the log and results go.
# The models are random-initialized from SmolLM2's config and tokenizer (KIT/smollm2/): speed
# and memory depend on the shapes, not on the weights. vLLM is not exercised here: see
# tests/test_gpu.py for the Serve and batch-inference checks on a machine with `make install
# ENGINE=cuda`.
set -uo pipefail
KIT=${1:-.gpukit}
OUT=${2:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
export ONPREM_ROOT="$OUT/root" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if ls "$KIT"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps "$KIT"/*.whl 2>&1 | tail -3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY - <<'EOF'
import torch, ray, deepspeed, peft, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())
print("ray", ray.__version__, "deepspeed", deepspeed.__version__, "peft", peft.__version__,
      "transformers", transformers.__version__, "nccl", torch.cuda.nccl.version())
EOF

# Random-initialized models with SmolLM2's config and tokenizer (135M as shipped; 1.7B-shaped).
$PY - "$KIT/smollm2" "$ONPREM_ROOT/models" <<'EOF'
import json, shutil, sys
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForCausalLM
src, store = Path(sys.argv[1]), Path(sys.argv[2])
shapes = {
    "smollm2-135m-random": {},
    "smollm2-1.7b-random": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                                num_attention_heads=32, num_key_value_heads=32),
}
for name, over in shapes.items():
    dest = store / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json":
            shutil.copy(f, dest / f.name)
    config = AutoConfig.from_pretrained(src, **over)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(dest)
    print(name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters", flush=True)
EOF

run() {  # name, model, extra overrides...
  local name=$1 model=$2; shift 2
  local t0=$SECONDS
  $PY -m jobs.finetune --config jobs/configs/finetune/smollm2_lora.yaml \
    run_name="$name" model="$ONPREM_ROOT/models/$model" scaling.use_gpu=true \
    scaling.num_workers=1 scaling.cpus_per_worker=4 merge=false "$@" \
    > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s"
  grep -E "\[finetune\] step|training failed|Error" "$OUT/$name.log" | tail -4
  $PY - "$ONPREM_ROOT/runs/$name/result.json" <<'EOF'
import json, sys
from pathlib import Path
p = Path(sys.argv[1])
if p.is_file():
    r = json.loads(p.read_text())
    keys = ("device", "dtype", "world_size", "steps", "tokens_per_s", "mfu", "train_loss_first",
            "train_loss_last", "eval_loss_first", "eval_loss", "train_seconds")
    print(json.dumps({k: r.get(k) for k in keys}))
EOF
}

run gpu-135m-zero2 smollm2-135m-random deepspeed.zero_stage=2 train.max_steps=40 train.eval_every=40
run gpu-135m-zero3 smollm2-135m-random deepspeed.zero_stage=3 train.max_steps=40 train.eval_every=40
run gpu-1.7b-zero2 smollm2-1.7b-random deepspeed.zero_stage=2 train.max_steps=20 \
  train.eval_every=20 train.micro_batch_size=16 data.max_seq_len=1024
for f in "$ONPREM_ROOT"/runs/*/result.json; do cp "$f" "$OUT/$(basename "$(dirname "$f")").json"; done
