"""What the machine offers a local model: CPU threads, a GPU, CPU features to avoid.

The choices here are measured defaults; ``[local] n_threads``, ``n_threads_batch`` and
``n_gpu_layers`` in fusion.toml override them.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["cores", "cpu_has_amx", "default_threads", "gpu_layers_for"]

_log = logging.getLogger(__name__)


def default_threads(cores: int) -> tuple[int, int]:
    """Decode and prefill threads when ``[local]`` does not set them: half the cores each.

    ggml's threads spin at every barrier, so one thread per core collapses when anything
    else wants the CPU (on 2 busy cores: 60-110 s instead of 14 s for the README's first
    command); llama-cpp-python's own default is half the cores too.
    """
    half = max(1, cores // 2)
    return half, half


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles (ggml's AMX matmul segfaults under KVM on such guests)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " amx_tile" in line for line in cpuinfo)
    except OSError:
        return False


_gpu_said = threading.Event()


def gpu_layers_for(configured: int | None, gpu_build: bool) -> int:
    """The layers to offload: as configured, else all of them (-1) on a GPU build, said once."""
    if configured is not None:
        return configured
    if not gpu_build:
        return 0
    if not _gpu_said.is_set():
        _gpu_said.set()
        _log.warning(
            "llama.cpp was built with GPU support: offloading every layer of local models "
            "(set [local] n_gpu_layers in fusion.toml to change it; 0 keeps them on the CPU)"
        )
    return -1
