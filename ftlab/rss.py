"""Peak resident memory of this process, importable without torch or Lightning (the benchmark's
HF Trainer and plain-loop processes read it too, and must not pay for ftlab's imports)."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux: VmHWM, which belongs to the process image (a
    child started by a big parent does not inherit its peak, as ru_maxrss does) and can be reset."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Start a new peak: runs of an in-process sweep each report their own, not the sweep's so far.
    Linux only (/proc/self/clear_refs "5" resets the high-water mark); elsewhere a no-op."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
