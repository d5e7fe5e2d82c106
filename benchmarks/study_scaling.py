"""Benchmark: what the study executor costs. One fixed small study, three ways, side by side.

The same study (model1 and model1_lstm, one seed each, on ``--limit-train`` images of the real
data, with its embeddings and robustness jobs) runs as its own ``cnnlstm reproduce`` process:

1. serially (the default executor);
2. on ``--workers 2`` (a Dask LocalCluster on 127.0.0.1);
3. on a loopback ``dask scheduler`` with two ``dask worker`` processes (``--dask``).

Each is timed as a whole process, ``--repeats`` times in turn (serial, workers, dask, serial, ...)
so drift hits all three alike; the medians and the ratios to serial are printed. On 2 cores no
speed-up is expected: the figure is the executor's overhead (cluster start-up, shipping the
dataset and the run folders). The accuracies of the three are checked to be identical.

Run: ``python benchmarks/study_scaling.py [--repeats 3] [--limit-train 5000] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_facts() -> dict:
    flags = set()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(),
            "flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})}


def study_args(limit_train: int, threads: int) -> list[str]:
    return ["--preset", "quick", "--seeds", "1", "--models", "model1,model1_lstm", "--tsne-samples", "0",
            "--limit-train", str(limit_train), "--threads", str(threads), "--quiet"]


def start_loopback_cluster(tmp: Path) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` on 127.0.0.1 and ``dask worker --nworkers 2 --nthreads 1``."""
    sched_file = tmp / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                               "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    deadline = time.monotonic() + 60
    while not (sched_file.exists() and sched_file.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
                                   "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                   "--dashboard-address", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def accuracies(out: Path) -> dict[str, float]:
    return {p.parent.name: json.loads(p.read_text())["accuracy"] for p in sorted(out.glob("runs/*/metrics.json"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit-train", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every run (the same everywhere)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnlstm-scaling-") as tmp:
        tmp = Path(tmp)
        address, procs = start_loopback_cluster(tmp)
        ways = {"serial": [], "workers 2": ["--workers", "2"], "dask, 2 workers": ["--dask", address]}
        seconds: dict[str, list[float]] = {w: [] for w in ways}
        accs: dict[str, dict] = {}
        try:
            for r in range(args.repeats):
                for way, extra in ways.items():
                    out = tmp / f"{way.split()[0].strip(',')}-{r}"
                    cmd = [sys.executable, "-m", "cnnlstm", "reproduce", *study_args(args.limit_train, args.threads),
                           "--out", str(out), *extra]
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                    seconds[way].append(time.perf_counter() - t0)
                    accs[way] = accuracies(out)
                    print(f"repeat {r + 1}: {way}: {seconds[way][-1]:.1f} s", flush=True)
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
    base = statistics.median(seconds["serial"])
    result = {"date": time.strftime("%Y-%m-%d"), "machine": cpu_facts(), "limit_train": args.limit_train,
              "threads": args.threads, "repeats": args.repeats,
              "median_s": {w: statistics.median(s) for w, s in seconds.items()},
              "range_s": {w: [min(s), max(s)] for w, s in seconds.items()},
              "ratio_to_serial": {w: statistics.median(s) / base for w, s in seconds.items()},
              "identical_accuracies": len({json.dumps(a, sort_keys=True) for a in accs.values()}) == 1,
              "accuracies": accs["serial"]}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["identical_accuracies"] else 1


if __name__ == "__main__":
    sys.exit(main())
