"""Keep the CPUs out of their sleep states while latency is measured, as cyclictest does.

Linux lets a process ask, through `/dev/cpu_dma_latency` (the PM QoS interface), that no CPU
take an idle state slower to leave than a given number of microseconds, for as long as the file
stays open. With 0 an idle CPU polls instead of halting. On a VM this matters most: a halted
vCPU is handed back to the hypervisor, and a request that must wake it waits for the host to
schedule it again (on the VM these figures were taken on, most of a p99 at 1,000 requests a
second). nginx, the shim and the direct requests are measured alike, so what is left is what
each proxy adds, not what the hypervisor does.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

PM_QOS = "/dev/cpu_dma_latency"


@contextmanager
def cpus_awake(wanted: bool = True, device: str = PM_QOS) -> Iterator[str]:
    """Hold every CPU's wake-up latency at 0 µs for the block, when `wanted` and allowed.

    Yields what held for the results file: `"polling"`, or `"free"` with the reason it is not
    held (not wanted, no such device, not permitted), so a run is never silently either.
    """
    if not wanted:
        yield "free (--allow-idle)"
        return
    fd = -1
    try:
        fd = os.open(device, os.O_WRONLY)
        os.write(fd, struct.pack("=i", 0))
    except OSError as e:
        if fd >= 0:
            os.close(fd)
        yield f"free ({device}: {e.strerror})"
        return
    try:
        yield "polling"
    finally:
        os.close(fd)  # closing the file withdraws the request
