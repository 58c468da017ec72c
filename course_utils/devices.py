"""Which device to run on and which precision to train in, by hardware.

* CUDA if there is a GPU; else Apple's MPS if its operations work here; else the CPU. The choice is printed.
* Mixed precision ``"auto"``: bf16 on a GPU with bf16 units (compute capability 8.0 and up: A100, H100, RTX 30xx
  on), fp16 with a gradient scaler on older GPUs (a T4 is 7.5: ``torch.cuda.is_bf16_supported()`` says True
  there only through emulation, without bf16 tensor cores), and float32 on MPS and the CPU, where bf16 autocast
  was measured 9-15x slower on CPUs without bf16 units (README).

Introduced in lesson 1.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import torch
import torch.nn.functional as F

PRECISIONS = ("auto", "no", "fp16", "bf16")


def mps_works() -> bool:
    """True when MPS is available and runs the operations the course's models use (convolution, group norm,
    attention, interpolation) with their gradients.

    Introduced in lesson 1.
    """
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return False
    try:
        x = torch.randn(2, 8, 8, 8, device="mps", requires_grad=True)
        h = F.group_norm(F.conv2d(x, torch.randn(8, 8, 3, 3, device="mps"), padding=1), 4)
        q = h.flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, q, q).sum() + F.interpolate(h, scale_factor=2.0).sum()
        out.backward()
        return True
    except Exception:  # an operation MPS lacks in this torch version
        return False


def default_device(verbose: bool = True) -> torch.device:
    """``cuda`` if a GPU is available, else ``mps`` where it works (Apple silicon), else ``cpu``; says which.

    Introduced in lesson 1.
    """
    if torch.cuda.is_available():
        device, why = torch.device("cuda"), torch.cuda.get_device_name(0)
    elif mps_works():
        device, why = torch.device("mps"), "Apple GPU (MPS)"
    else:
        device = torch.device("cpu")
        mps = getattr(torch.backends, "mps", None)
        why = ("MPS is present but lacks an operation the course needs" if mps and mps.is_available()
               else "no GPU found")
    if verbose:
        print(f"[device] {device.type}: {why}", file=sys.stderr)
    return device


def has_bf16_units() -> bool:
    """True on a CUDA GPU that computes bf16 in hardware (compute capability 8.0 and up), not by emulation.

    Introduced in lesson 1.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_mixed_precision(requested: str, device: str | torch.device) -> str:
    """The autocast precision to train in: ``"no"`` (float32), ``"fp16"`` or ``"bf16"``. ``"auto"`` means bf16
    on a GPU with bf16 units, fp16 (with a gradient scaler) on an older GPU, float32 elsewhere.

    Introduced in lesson 1.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested
    if torch.device(device).type == "cuda":
        return "bf16" if has_bf16_units() else "fp16"
    return "no"


def cpu_name() -> str:
    """The CPU model as lscpu gives it (``platform.processor()`` is empty on many Linux machines), with its family
    and model numbers and widest vector units where Linux tells them: a virtual machine's "AMD EPYC" may be a Zen 3
    with AVX2 or a Zen 4 with AVX-512 and bf16, and the course's timings differ between the two."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info = open("/proc/cpuinfo", encoding="utf-8").read().split("\n\n")[0]
    except OSError:
        return name
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    units = [u for u in ("avx512_bf16", "avx512f", "avx2") if u in flags][:1] + (["amx"] if "amx_tile" in flags else [])
    family = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""
    return ", ".join(x for x in [name, family, " ".join(units)] if x)


def machine_description() -> str:
    """The machine a figure was measured on: CPU model and cores, the GPU if there is one, torch and its threads.
    Benches print it before their figures; stored notebook outputs record it."""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu_name()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")
