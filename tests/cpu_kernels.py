"""The CPU kernels the book's stored outputs were computed with: the one place that
says so, used by every entry point that trains or executes chapters (the test suite's
conftest, the benchmarks, ``tools/time_chapters.py``).

On a CPU with AVX-512, PyTorch, MKL and oneDNN pick wider kernels than AVX2, which add
in another order: the toy CLIP then trains to other numbers and strict nbval fails.
Capping the kernels at AVX2 gives the stored numbers on either kind of machine (and
costs nothing measurable on the toy training). It must happen before torch is imported;
notebook kernels and subprocesses inherit it through the environment.
"""

import os

CPU_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def cap_cpu_kernels() -> None:
    """Set the cap in this process's environment, unless a value is already set (a test
    then reports the difference)."""
    for name, value in CPU_KERNELS.items():
        os.environ.setdefault(name, value)
