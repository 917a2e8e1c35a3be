"""The CI regression guard: a short benchmark that fails when passthrough got much slower.

`bench/guard.py` runs the small passthrough GET against nginx and the 1-worker shim (same origin,
same run, as bench/run.py does), and compares the shim's **CPU per request relative to nginx's**
with the ratio recorded in bench/guard.json: below 0.7x the recorded one, it exits 1.

Why the CPU ratio and not requests/s: on a shared CI machine requests/s moves with whatever else
runs, for both proxies differently; CPU per request of each, measured in the same run, moves far
less. Both ratios are printed. `--record` writes the measured ratio as the new reference (do it
on a quiet machine, after a deliberate change; the recorded ones are the lowest of a few runs).

The reference is kept per build of the request path (`compiled` by scripts/native.py, as `make
test` and the image run it, or plain `python`), and the run is compared with its own build's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import run
from plan import ROOT
from report import hot_path

REFERENCE = ROOT / "bench" / "guard.json"
#: fail below this share of the recorded ratio
FLOOR = 0.7


def measure(duration: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="shim-guard-") as tmp:
        output = Path(tmp) / "guard.json"
        args = ["--quick", "--scenarios", "get_1k", "--duration", f"{duration}s"]
        if run.main([*args, "--warmup", "1s", "--output", str(output)]) != 0:
            raise SystemExit("bench/guard.py: the benchmark did not run (see above)")
        rows = {row["target"]: row for row in json.loads(output.read_text())["results"]}
    shim, nginx = rows["shim"], rows["nginx"]
    return {
        "cpu_ratio": shim["requests_per_cpu_s"] / nginx["requests_per_cpu_s"],
        "rps_ratio": shim["requests_per_s"] / nginx["requests_per_s"],
        "shim_requests_per_cpu_s": shim["requests_per_cpu_s"],
        "nginx_requests_per_cpu_s": nginx["requests_per_cpu_s"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=5, help="seconds per target (default 5)")
    p.add_argument("--record", action="store_true", help="store this run as the reference")
    args = p.parse_args(argv)
    build = hot_path()
    got = measure(args.duration)
    print(
        f"passthrough ({build} hot path), shim vs nginx: "
        f"CPU per request ratio {got['cpu_ratio']:.3f} "
        f"(req/CPU-s {got['shim_requests_per_cpu_s']:,.0f} vs "
        f"{got['nginx_requests_per_cpu_s']:,.0f}), req/s ratio {got['rps_ratio']:.3f}"
    )
    references = json.loads(REFERENCE.read_text(encoding="utf-8"))
    if args.record:
        references[build] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **got}
        REFERENCE.write_text(json.dumps(references, indent=2) + "\n", encoding="utf-8")
        print(f"recorded in {REFERENCE} for the {build} hot path")
        return 0
    if build not in references:
        print(
            f"bench/guard.py: no reference for the {build} hot path in {REFERENCE}; "
            "record one with --record on a quiet machine",
            file=sys.stderr,
        )
        return 1
    recorded = references[build]
    floor = FLOOR * float(recorded["cpu_ratio"])
    if got["cpu_ratio"] < floor:
        print(
            f"REGRESSION: the ratio fell to {got['cpu_ratio']:.3f}, below {FLOOR} x the "
            f"recorded {recorded['cpu_ratio']:.3f} ({recorded['date']}) = {floor:.3f}; profile "
            "the passthrough path (bench/README.md, 'Where the time goes')",
            file=sys.stderr,
        )
        return 1
    print(f"ok: at least {floor:.3f} ({FLOOR} x the ratio recorded {recorded['date']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
