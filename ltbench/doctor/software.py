"""The doctor's software checks: Python, torch, torchvision, the other dependencies, OpenCV's contrib saliency."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys

from ltbench.doctor.check import FAIL, MIN_PYTHON, MIN_TORCH, OK, Check, _version_tuple

OPENCV_CONTRIB_PIP = "opencv-contrib-python-headless"
# the rest of pyproject.toml's dependencies (import name -> pip name)
PACKAGES = {"numpy": "numpy", "pandas": "pandas", "matplotlib": "matplotlib", "typer": "typer", "rich": "rich",
            "yaml": "pyyaml", "tabulate": "tabulate", "jinja2": "jinja2"}


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
