"""What the CPU can do, as far as the choice of an INT8 graph depends on it.

x86 int8 kernels without VNNI (AVX2, AVX-512 without VNNI) add pairs of u8 x s8 products in int16, which
saturates when weights use the full int8 range; with VNNI (``avx512_vnni``, ``avx_vnni``, AMX) the dot
products accumulate in int32. Other architectures' int8 dot products accumulate in int32 as well.
"""

from __future__ import annotations

import platform
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86 = frozenset({"x86_64", "amd64", "i386", "i686"})


def x86_without_vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether this CPU is x86 without VNNI: its int8 kernels sum full-range weights wrongly.

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read when ``None``) and ``machine`` the architecture
    (``platform.machine()`` when ``None``). False when nothing says so: another architecture, or no CPU
    flags to read.
    """
    if (machine or platform.machine()).lower() not in X86:
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return False
    return not VNNI_FLAGS & set(flags.partition(":")[2].split())
