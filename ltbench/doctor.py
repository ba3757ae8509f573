"""`ltbench doctor`: is this machine ready to train, and on which device?

Each check returns one `Check` (a status, what was found, and a hint on what to do). `run_checks`
collects them for a requested device; `ready` says whether everything *required* for that device is
there (the command's exit code). Optional items (bf16, TF32, torch.compile, data sets other than the
procedural `shapes`) are reported but never fail the run.

Everything here must work on torch versions older than the pinned one (down to 2.4, the GPU images we
are lent ship such versions): APIs newer than that are reached through `getattr`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported inside the checks, so doctor starts without it
    import torch

OK, FAIL, WARN, INFO, SKIP = "ok", "fail", "warn", "info", "skip"
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 1)  # pyproject.toml's floor
OPENCV_CONTRIB_PIP = "opencv-contrib-python-headless"
# the rest of pyproject.toml's dependencies (import name -> pip name)
PACKAGES = {"numpy": "numpy", "pandas": "pandas", "matplotlib": "matplotlib", "typer": "typer", "rich": "rich",
            "yaml": "pyyaml", "tabulate": "tabulate", "jinja2": "jinja2"}
COMPILE_TIMEOUT_S = 120.0


@dataclass
class Check:
    """One reported item: `status` is ok / fail / warn / info / skip; `required` items decide the exit code."""

    name: str
    status: str
    value: str
    hint: str = ""
    required: bool = False
    data: dict[str, Any] | None = None  # machine-readable details (JSON output)


@dataclass
class DoctorOptions:
    device: str = "auto"  # auto, cpu or cuda[:N]
    data_dir: Path | None = None
    results_dir: Path | None = None
    compile: bool = False  # try torch.compile (cold compile: tens of seconds)
    compile_timeout_s: float = COMPILE_TIMEOUT_S


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def target_device(name: str) -> str:
    """'cpu' or 'cuda[:N]' for a --device value; ValueError for anything else (no CUDA needed to answer)."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda[:N]")


# ----- software ------------------------------------------------------------------------------------

def check_python() -> Check:
    ver = platform.python_version()
    good = sys.version_info[:2] >= MIN_PYTHON
    return Check("python", OK if good else FAIL, f"{ver} ({sys.executable})",
                 "" if good else f"ltbench needs Python >= {'.'.join(map(str, MIN_PYTHON))}", required=True)


def check_torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", FAIL, f"not importable ({exc})", "install a torch build for your machine: "
                     "https://pytorch.org/get-started/locally/", required=True)
    good = _version_tuple(torch.__version__) >= MIN_TORCH
    hint = "" if good else f"ltbench needs torch >= {'.'.join(map(str, MIN_TORCH))}"
    return Check("torch", OK if good else FAIL, torch.__version__, hint, required=True,
                 data={"version": torch.__version__, "debug": bool(getattr(torch.version, "debug", False))})


def check_torchvision() -> Check:
    try:
        import torchvision
    except Exception as exc:  # ImportError, or a torchvision built for another torch (RuntimeError)
        return Check("torchvision", FAIL, f"not importable ({type(exc).__name__}: {exc})",
                     "install the torchvision that matches your torch build", required=True)
    return Check("torchvision", OK, torchvision.__version__, required=True)


def check_packages() -> Check:
    found, missing = {}, []
    for module, pip_name in PACKAGES.items():
        try:
            mod = importlib.import_module(module)
            found[module] = getattr(mod, "__version__", None) or _dist_version(pip_name)
        except ImportError:
            missing.append(pip_name)
    if missing:
        return Check("python packages", FAIL, "missing: " + ", ".join(missing),
                     "pip install " + " ".join(missing), required=True, data=found)
    return Check("python packages", OK, ", ".join(f"{k} {v}" for k, v in found.items()), required=True, data=found)


def _dist_version(pip_name: str) -> str:
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def check_opencv() -> Check:
    """Fine-grained saliency (SMCL's default operator) needs OpenCV's contrib `saliency` module."""
    fallback = "or run SMCL with --set saliency=spectral-residual (a different map, documented in ltbench.saliency)"
    try:
        import cv2
    except ImportError:
        return Check("opencv (contrib saliency)", FAIL, "cv2 not importable",
                     f"pip install {OPENCV_CONTRIB_PIP}, {fallback}", required=True)
    try:
        # contrib-only API, absent from the stubs opencv ships (they cover the main modules)
        cv2.saliency.StaticSaliencyFineGrained_create()  # type: ignore[attr-defined]
    except AttributeError:
        return Check("opencv (contrib saliency)", FAIL, f"cv2 {cv2.__version__} without the contrib saliency module",
                     f"pip uninstall opencv-python-headless opencv-python; pip install {OPENCV_CONTRIB_PIP} "
                     f"(both provide cv2), {fallback}", required=True)
    return Check("opencv (contrib saliency)", OK, f"cv2 {cv2.__version__}, StaticSaliencyFineGrained present",
                 required=True)


# ----- device --------------------------------------------------------------------------------------

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


# ----- data, results, threads ----------------------------------------------------------------------

_CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", ("data_batch_1", "data_batch_5", "test_batch")),
                "cifar100": ("cifar-100-python", ("train", "test"))}
_FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")


def find_dataset(name: str, root: Path) -> Path | None:
    """Where the data set's files are (the folder the loader would read), without loading them; None: absent."""
    if name in _CIFAR_FILES:
        folder, files = _CIFAR_FILES[name]
        path = root / folder
        return path if all((path / f).exists() for f in files) else None
    if name == "fashion-mnist":
        from ltbench.data.datasets import _fashion_mnist_dirs  # the loader's own search order

        for candidate in _fashion_mnist_dirs(root):
            if all((candidate / s).exists() or (candidate / (s + ".gz")).exists() for s in _FASHION_STEMS):
                return candidate
        return None
    if name == "imagenet-lt":
        from ltbench.data.imagenet_lt import LIST_NAMES, split_dir_for

        path = split_dir_for(None, root)
        return path if (path / LIST_NAMES["train"]).exists() else None
    raise ValueError(f"no file check for data set {name!r}")


def check_datasets(data_dir: Path | None) -> list[Check]:
    from ltbench.data.datasets import DATASETS, default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    out = []
    for name in DATASETS:
        if name == "shapes":
            out.append(Check("data: shapes", OK, "generated on the fly (no files)", required=True))
            continue
        where = find_dataset(name, root)
        if where is not None:
            out.append(Check(f"data: {name}", OK, str(where), data={"path": str(where)}))
        elif name == "imagenet-lt":
            out.append(Check(f"data: {name}", WARN, f"split lists not found under {root}",
                             "pass --split-dir / $LTBENCH_IMAGENET_LT_SPLITS and the ILSVRC-2012 images as --data-dir"))
        else:
            out.append(Check(f"data: {name}", WARN, f"not found under {root}",
                             f"ltbench data fetch {name} --data-dir {root}"))
    return out


def check_results_dir(results_dir: Path | None) -> Check:
    """Writable means a file can really be created there (or in the nearest existing parent)."""
    from ltbench.rundir import default_results_dir

    path = Path(results_dir) if results_dir else default_results_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".ltbench-doctor-"):
            pass
    except OSError as exc:
        return Check("results folder", FAIL, f"{path}: not writable ({exc.strerror or exc})",
                     "pass --results-dir or set $LTBENCH_RESULTS to a writable folder", required=True)
    state = "exists" if path.exists() else f"will be created under {probe}"
    return Check("results folder", OK, f"{path.resolve()} ({state}, writable)", required=True)


def check_threads() -> Check:
    import torch

    from ltbench.cpu import process_settings

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    data: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                            "interop_threads": torch.get_num_interop_threads(),
                            "usable_cpus": usable, **env, **process_settings()}
    parts = [f"torch {data['torch_threads']} intra-op / {data['interop_threads']} inter-op threads",
             f"{usable} usable CPUs", *(f"{k}={v}" for k, v in env.items() if v)]
    value = ", ".join(parts)
    if usable and data["torch_threads"] > usable:
        return Check("threads", WARN, value, f"more torch threads than usable CPUs; set OMP_NUM_THREADS={usable}",
                     data=data)
    return Check("threads", INFO, value, data=data)


# ----- the whole report ----------------------------------------------------------------------------

def run_checks(opts: DoctorOptions) -> list[Check]:
    """Every check for the requested device, in report order. Checks that need torch are skipped without it."""
    device = opts.device
    checks = [check_python(), check_torch()]
    if checks[-1].status == FAIL and "not importable" in checks[-1].value:
        return checks + [check_packages()]
    try:
        device = target_device(opts.device)
    except ValueError as exc:
        return checks + [Check("device", FAIL, str(exc), required=True)]
    steps: list[Callable[[], Check | list[Check]]] = [
        check_torchvision, check_packages, lambda: check_cuda_build(device), lambda: check_device(device),
        lambda: check_bf16(device), lambda: check_tf32(device),
        lambda: check_compile(device, opts.compile, opts.compile_timeout_s), check_opencv,
        lambda: check_datasets(opts.data_dir), lambda: check_results_dir(opts.results_dir), check_threads,
    ]
    for step in steps:
        try:
            got = step()
        except Exception as exc:  # a probe that breaks is a finding, not a crash of the report
            got = Check(getattr(step, "__name__", "check"), FAIL, f"{type(exc).__name__}: {exc}", required=True)
        checks.extend(got if isinstance(got, list) else [got])
    return checks


def ready(checks: list[Check]) -> bool:
    """True when no required check failed."""
    return not any(c.required and c.status == FAIL for c in checks)


def report(checks: list[Check], device: str) -> dict[str, Any]:
    """The JSON form: the device asked for, the verdict and every check."""
    return {"device": device, "ready": ready(checks), "checks": [asdict(c) for c in checks]}
