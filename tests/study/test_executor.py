"""The study executor: one tiny study serially, on ``--workers 2`` and on a loopback Dask scheduler.

Every Dask scheduler and worker here binds to 127.0.0.1 (a scheduler runs whatever code its
clients send). The faults: a worker killed mid-job, the driver killed mid-study, a job that always
fails, and a scheduler that vanishes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.config import config_to_dict
from cnnlstm.study.engine.joblog import read_job_log
from cnnlstm.study.paper.plan import STUDY_PRESETS, plan_jobs

distributed = pytest.importorskip("distributed", reason="the cluster extra (Dask distributed) is not installed")
psutil = pytest.importorskip("psutil")

SRC = Path(__file__).resolve().parents[2] / "src"
# A study of two runs and their analyses, small enough for CI: model1 and model1_lstm, one seed each.
ARGS = ["--no-verify", "--limit-train", "60", "--tsne-samples", "0", "--threads", "1", "--seeds", "1",
        "--models", "model1,model1_lstm", "--quiet"]
SERIAL = [*ARGS, "--workers", "1"]  # this process, one job after another
RUNS = ("model1-s0", "model1_lstm-s0")


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    e.pop("CNNLSTM_DATA", None)
    return e


def study_cmd(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlstm", "reproduce", "--data-dir", str(data_dir), *ARGS, "--out", str(out),
            *extra]


def accuracies(out: Path) -> dict[str, float]:
    return {p.parent.name: json.loads(p.read_text())["accuracy"] for p in sorted(out.glob("runs/*/metrics.json"))}


def probabilities(out: Path) -> dict[str, np.ndarray]:
    out_probs = {}
    for p in sorted(out.glob("runs/*/predictions.npz")):
        with np.load(p) as npz:
            out_probs[p.parent.name] = npz["probs"]
    return out_probs


def report_tables(out: Path) -> list[str]:
    """The report's Markdown table rows without the columns and figures that are timings."""
    rows, drop = [], set()
    for line in (out / "report.md").read_text().splitlines():
        if not line.startswith("|"):
            drop = set()
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not drop and not set("".join(cells)) <= set("-: "):
            drop = {i for i, c in enumerate(cells) if re.search(r"time|seconds|train s|\bs\)", c)}
        rows.append("|".join(c for i, c in enumerate(cells) if i not in drop))
    return rows


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def loopback_cluster(tmp_path):
    """``dask scheduler`` and ``dask worker --nworkers 2`` on 127.0.0.1; yields the address and the processes."""
    sched_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                  "--scheduler-file", str(sched_file)],
                                 env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    procs = [scheduler]
    try:
        wait_for(lambda: sched_file.exists() and sched_file.stat().st_size > 0, 60, "the scheduler")
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                                       "2", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                       "--dashboard-address", "127.0.0.1:0"],
                                      env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_serial_local_workers_and_a_loopback_scheduler_give_the_same_study(tiny_data_dir, tmp_path,
                                                                           loopback_cluster):
    address, _ = loopback_cluster
    outs = {"serial": tmp_path / "serial", "workers": tmp_path / "workers", "dask": tmp_path / "dask"}
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *SERIAL, "--out", str(outs["serial"])]) == 0
    # --workers auto, the command's default: one job per core at the threads asked for (1), recorded
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(outs["workers"]),
                 "--workers", "auto"]) == 0
    from cnnlstm.study.engine.session import usable_cores

    record = json.loads((outs["workers"] / "cluster.json").read_text())
    assert record["threads_per_job"] == 1 and record["workers"] == usable_cores()
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(outs["dask"]),
                 "--dask", address]) == 0
    ref = accuracies(outs["serial"])
    assert set(ref) == set(RUNS)
    ref_probs = probabilities(outs["serial"])
    for name in ("workers", "dask"):
        assert accuracies(outs[name]) == ref, name
        probs = probabilities(outs[name])
        assert all(np.array_equal(probs[k], ref_probs[k]) for k in ref_probs), name  # bit-identical
        assert report_tables(outs[name]) == report_tables(outs["serial"]), name
        for run in RUNS:  # the analyses came back too, and no lock or scratch file travelled
            folder = outs[name] / "runs" / run
            assert (folder / "robustness.json").exists() and not list(folder.glob("*.tmp"))
    for name, out in outs.items():  # the job log: each job once, timed where it ran
        log_rows = read_job_log(out)
        jobs = [r["job"] for r in log_rows]
        assert sorted(jobs) == sorted(set(jobs)) and set(RUNS) <= set(jobs), (name, jobs)
        assert all(r["status"] == "done" and r["seconds"] > 0 for r in log_rows), name
        wheres = {r["where"] for r in log_rows}
        serial = name == "serial" or (name == "workers" and usable_cores() == 1)
        assert all(w.startswith("this process") for w in wheres) == serial, (name, wheres)
        assert "Where the time went" in (out / "report.md").read_text()
        time_text = (out / "report.md").read_text().split("## Where the time went", 1)[1]
        assert all(w in time_text for w in wheres), (name, wheres)  # the workers by name
    assert "job(s) at a time" in (outs["workers"] / "report.md").read_text()  # and the rule that chose them


def test_a_worker_killed_mid_job_reruns_the_job_and_each_run_appears_once(tiny_data_dir, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "study"
    proc = subprocess.Popen(study_cmd(tiny_data_dir, out, "--workers", "2"), env={**env(), "TMPDIR": str(scratch)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: list(scratch.glob("cnnlstm-job-*/runs/*")), 180, "a training job to start on the worker")
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]
        assert workers, "no worker process"
        for w in workers:  # the worker processes (their nannies live in the driver and restart them)
            w.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert set(accuracies(out)) == set(RUNS)
    for run in RUNS:
        history = (out / "runs" / run / "history.csv").read_text().splitlines()
        epochs = [row.split(",")[0] for row in history[1:]]
        assert epochs == sorted(set(epochs), key=int), epochs  # each epoch once: the run counted once
    assert not (out / "failures.json").exists()


def test_the_driver_killed_mid_study_resumes_without_retraining(tiny_data_dir, tmp_path):
    out = tmp_path / "study"
    proc = subprocess.Popen(study_cmd(tiny_data_dir, out, "--workers", "2"), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = wait_for(lambda: next(iter(out.glob("runs/*/metrics.json")), None), 300, "a finished run")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local cluster, at once
        proc.wait()
    stamp = first.stat().st_mtime_ns
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *SERIAL, "--out", str(out)]) == 0
    assert first.stat().st_mtime_ns == stamp  # not retrained
    assert set(accuracies(out)) == set(RUNS)


def test_a_job_that_always_fails_is_named_and_the_rest_of_the_study_completes(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "study"
    jobs = plan_jobs(STUDY_PRESETS["quick"], seeds=1, models=("model1", "model1_lstm"),
                     common={"data_dir": str(tiny_data_dir), "download": True, "verify": False, "device": "auto",
                             "threads": 1, "limit_train": 60})
    broken = next(j for j in jobs if j.name == "model1_lstm-s0")
    folder = broken.folder(out)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config_to_dict(broken.cfg)))
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")  # every resume of it fails
    rc = main(["reproduce", "--data-dir", str(tiny_data_dir), *SERIAL, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and "1 job(s) failed: model1_lstm-s0" in err[0], err
    assert set(accuracies(out)) == {"model1-s0"}
    assert (out / "runs/model1-s0/robustness.json").exists()  # its analyses ran
    assert "model1_lstm-s0" in json.loads((out / "failures.json").read_text())
    failed_rows = [r for r in read_job_log(out) if r["status"] == "failed"]
    assert [r["job"] for r in failed_rows] == ["model1_lstm-s0"] and failed_rows[0]["error"]
    assert "Missing from this report" in (out / "report.md").read_text()


def test_a_vanished_scheduler_ends_the_driver_with_one_line_and_a_rerun_resumes(tiny_data_dir, tmp_path,
                                                                               loopback_cluster):
    address, (scheduler, _) = loopback_cluster
    out = tmp_path / "study"
    proc = subprocess.Popen(study_cmd(tiny_data_dir, out, "--dask", address), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = wait_for(lambda: next(iter(out.glob("runs/*/metrics.json")), None), 300, "a finished run")
        os.killpg(scheduler.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = err.strip().splitlines()
    assert proc.returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith("cnnlstm reproduce: error: ") and "scheduler" in lines[0], err
    stamp = first.stat().st_mtime_ns
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *SERIAL, "--out", str(out)]) == 0
    assert first.stat().st_mtime_ns == stamp and set(accuracies(out)) == set(RUNS)


def test_the_executor_binds_to_loopback_only():
    from cnnlstm.study.engine.executor import DaskExecutor, is_loopback

    assert is_loopback("tcp://127.0.0.1:8786") and is_loopback("tls://localhost:1") and is_loopback("tcp://[::1]:2")
    assert not is_loopback("tcp://192.0.2.7:8786")
    executor = DaskExecutor.local(1)
    try:
        info = executor.client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
        me = psutil.Process()
        listening = [c.laddr.ip for p in (me, *me.children(recursive=True)) for c in p.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and set(listening) == {"127.0.0.1"}, listening  # the HTTP endpoints too
    finally:
        executor.close()


def test_missing_dask_is_a_one_line_error(monkeypatch, tiny_data_dir, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    rc = main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(tmp_path / "s"), "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cnnlstm[cluster]" in err[0]


def test_every_study_command_uses_every_core_by_default(tmp_path):
    from cnnlstm.cli import build_parser
    from cnnlstm.study.engine.session import AUTO_THREADS, Cluster, settle_cluster, usable_cores

    parser = build_parser()
    for command in (["reproduce"], ["compare", "a", "b"], ["regimes"]):
        assert parser.parse_args(command).workers == "auto", command
    cluster, settings = settle_cluster(Cluster("auto"), Path("/nonexistent-study"), {})
    assert settings["threads"] == AUTO_THREADS and cluster.threads_per_job == AUTO_THREADS
    assert cluster.processes == max(1, usable_cores() // AUTO_THREADS)
    assert settle_cluster(Cluster(1), Path("/nonexistent-study"), {})[0].workers is None  # --workers 1: serial
    # a resumed auto study keeps the threads per job its folder recorded, whatever this machine has
    (tmp_path / "cluster.json").write_text(json.dumps({"threads_per_job": 2}))
    cluster, settings = settle_cluster(Cluster("auto"), tmp_path, {})
    assert settings["threads"] == 2 and "kept from this folder's cluster.json" in cluster.rule
