"""bench/awake.py: the latency case holds the CPUs' wake-up latency at 0 µs, says so in the
results, and lets go afterwards; where it cannot, it says why instead of failing the run."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.support.paths import load_script

PM_QOS = Path("/dev/cpu_dma_latency")
awake = load_script("bench/awake.py")


def _holders(path: Path) -> int:
    """How many of this process's open files are `path`."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path))


def test_a_request_of_zero_is_written_and_withdrawn_when_the_block_ends(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")

    with awake.cpus_awake(device=str(device)) as held:
        assert held == "polling"
        assert struct.unpack("=i", device.read_bytes()) == (0,)
        assert _holders(device) == 1
    assert _holders(device) == 0


def test_not_wanted_touches_nothing_and_says_so(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")

    with awake.cpus_awake(False, device=str(device)) as held:
        assert held == "free (--allow-idle)"
        assert _holders(device) == 0
    assert device.read_bytes() == b""


def test_a_machine_without_the_device_runs_free_and_says_why(tmp_path: Path) -> None:
    with awake.cpus_awake(device=str(tmp_path / "absent")) as held:
        assert held == f"free ({tmp_path / 'absent'}: No such file or directory)"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_refused_request_is_closed_again_and_the_run_goes_on_free() -> None:
    full = Path("/dev/full")  # opens for writing, refuses every write (ENOSPC)
    with awake.cpus_awake(device=str(full)) as held:
        assert held == "free (/dev/full: No space left on device)"
        assert _holders(full) == 0


@pytest.mark.skipif(not os.access(PM_QOS, os.W_OK), reason="needs a writable /dev/cpu_dma_latency")
def test_the_kernel_takes_the_request_while_held_and_drops_it_after() -> None:
    def current() -> int:
        with PM_QOS.open("rb") as device:
            (value,) = struct.unpack("=i", device.read(4))
        return int(value)

    before = current()
    with awake.cpus_awake() as held:
        assert held == "polling"
        assert current() == 0
    assert current() == before
