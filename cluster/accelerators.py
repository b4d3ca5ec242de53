"""GPU model names: from what CUDA reports to the names Ray and the inventory use."""

from __future__ import annotations

# Checked in order: the first substring found in the CUDA device name wins.
_CUDA_NAME_TO_MODEL = (
    ("H200", "H200"),
    ("H100", "H100"),
    ("A100-SXM4-80GB", "A100-80GB"),
    ("A100 80GB", "A100-80GB"),
    ("A100", "A100-40GB"),
    ("L40S", "L40S"),
    ("L4", "L4"),
    ("A10G", "A10G"),
    ("T4", "T4"),
    ("V100", "V100"),
)


def gpu_model_from_name(device_name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` → ``"H100"``; unknown names come back unchanged."""
    for needle, model in _CUDA_NAME_TO_MODEL:
        if needle in device_name:
            return model
    return device_name.replace("NVIDIA ", "").strip()


def local_gpus() -> list[str]:
    """This machine's GPUs by model name, from ``nvidia-smi`` (no CUDA import); [] without."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [gpu_model_from_name(line.strip()) for line in out.splitlines() if line.strip()]
