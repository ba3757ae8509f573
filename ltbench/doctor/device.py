"""The doctor's device checks: the CUDA build, a real conv step on the device, bf16, TF32, torch.compile.

Everything here must work on torch versions older than the pinned one (down to 2.4, the GPU images we are
lent ship such versions): APIs newer than that are reached through `getattr`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from ltbench.doctor.check import FAIL, INFO, OK, SKIP, WARN, Check

if TYPE_CHECKING:  # torch is imported inside the checks, so doctor starts without it
    import torch


def check_cuda_build(device: str) -> Check:
    import torch

    need = device.startswith("cuda")
    cuda, cudnn = torch.version.cuda, None
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:  # cuDNN missing from the build
        cudnn = None
    value = f"CUDA {cuda or 'none (CPU build)'}, cuDNN {cudnn or 'none'}"
    data = {"cuda": cuda, "cudnn": cudnn, "available": torch.cuda.is_available()}
    if not need:
        return Check("cuda / cudnn", INFO, value, data=data)
    if cuda is None:
        return Check("cuda / cudnn", FAIL, value, "this torch is a CPU build; install a CUDA build of torch",
                     required=True, data=data)
    if not torch.cuda.is_available():
        return Check("cuda / cudnn", FAIL, value + ", but no device visible",
                     "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES", required=True, data=data)
    return Check("cuda / cudnn", OK, value, required=True, data=data)


def check_device(device: str) -> Check:
    """Name and memory, and a real conv forward + backward on the device (the device works, not just exists)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return Check("device", FAIL, f"{device}: no CUDA device", "use --device cpu, or fix the CUDA setup",
                         required=True)
        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            return Check("device", FAIL, f"{device}: only {torch.cuda.device_count()} CUDA device(s)",
                         "pick an existing index", required=True)
        props = torch.cuda.get_device_properties(index)
        gib = props.total_memory / 2**30
        value = f"{props.name}, {gib:.1f} GiB, compute capability {props.major}.{props.minor}"
        data = {"name": props.name, "memory_gib": round(gib, 2), "capability": [props.major, props.minor],
                "count": torch.cuda.device_count()}
    else:
        dev = torch.device("cpu")
        host_gib, name = _host_memory_gib(), _cpu_model()
        value = f"{name}, {os.cpu_count()} logical CPUs" + (f", {host_gib:.1f} GiB RAM" if host_gib else "")
        data = {"name": name, "cpus": os.cpu_count(), "memory_gib": host_gib}
    try:
        _tiny_step(dev)
    except Exception as exc:
        return Check("device", FAIL, f"{value}; a conv step failed ({type(exc).__name__}: {exc})",
                     "the device is visible but cannot run a convolution", required=True, data=data)
    return Check("device", OK, value + "; conv forward/backward ran", required=True, data=data)


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _host_memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _tiny_step(dev: torch.device, dtype: torch.dtype | None = None) -> None:
    import torch

    conv = torch.nn.Conv2d(3, 8, 3, padding=1).to(dev)
    x = torch.randn(4, 3, 16, 16, device=dev)
    ctx = torch.autocast(dev.type, dtype=dtype) if dtype is not None else _null()
    with ctx:
        y = conv(x)
    y.float().square().mean().backward()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    assert conv.weight.grad is not None  # set by the backward above
    if not torch.isfinite(conv.weight.grad).all():
        raise RuntimeError("non-finite gradient")


def _null() -> AbstractContextManager[None]:
    from contextlib import nullcontext

    return nullcontext()


def check_bf16(device: str) -> Check:
    """bf16 autocast (precision=bf16 is opt-in, so this never fails the run)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return Check("bf16", SKIP, "no CUDA device")
        supported = torch.cuda.is_bf16_supported()
        if not supported:
            return Check("bf16", WARN, "not supported by this GPU", "use --precision fp32 (the default)")
    try:
        _tiny_step(dev, torch.bfloat16)
    except Exception as exc:
        return Check("bf16", WARN, f"autocast failed ({type(exc).__name__}: {exc})", "use --precision fp32")
    where = "GPU" if dev.type == "cuda" else "CPU (speed depends on AVX-512 BF16 / AMX)"
    return Check("bf16", OK, f"autocast conv ran on the {where}")


def check_tf32(device: str) -> Check:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return Check("tf32", INFO, "n/a (CUDA only)")
    major, _ = torch.cuda.get_device_capability(torch.device(device))
    matmul = torch.backends.cuda.matmul.allow_tf32
    conv = torch.backends.cudnn.allow_tf32
    data = {"supported": major >= 8, "matmul_allowed": matmul, "cudnn_allowed": conv}
    if major < 8:  # TF32 tensor cores arrived with Ampere (compute capability 8.0)
        return Check("tf32", INFO, "not supported (compute capability < 8.0)", data=data)
    return Check("tf32", OK, f"supported; matmul allow_tf32={matmul}, cuDNN allow_tf32={conv} (torch defaults: "
                 "matmul off, cuDNN on)", data=data)


_COMPILE_PROBE = textwrap.dedent("""
    import sys, torch
    dev = torch.device(sys.argv[1])
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).to(dev)
    fn = torch.compile(net)
    x = torch.randn(2, 3, 8, 8, device=dev)
    torch.testing.assert_close(fn(x), net(x), rtol=1e-4, atol=1e-4)
    print("compiled")
""")


def check_compile(device: str, enabled: bool, timeout_s: float) -> Check:
    """torch.compile of a tiny module in a child process (a hang or a crash there cannot take this one down)."""
    if not enabled:
        return Check("torch.compile", SKIP, "not tried", "pass --compile to try it (a cold compile takes tens "
                     "of seconds); training only uses it with --compile")
    try:
        res = subprocess.run([sys.executable, "-c", _COMPILE_PROBE, device], capture_output=True, text=True,
                             timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Check("torch.compile", WARN, f"no result within {timeout_s:g} s", "train without --compile")
    if res.returncode != 0 or "compiled" not in res.stdout:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("torch.compile", WARN, f"failed: {last[:200]}", "train without --compile (a C compiler "
                     "and, on CUDA, triton are needed)")
    return Check("torch.compile", OK, "a small conv net compiled and matched eager")
