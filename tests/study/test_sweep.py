"""Sweeps: search spaces, the objective and pruning, sweep.json, the best config round trip, and
several worker processes on one study (SQLite, and PostgreSQL when its server is installed)."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from cnnlstm.cli import main
from cnnlstm.config import config_to_dict, load_config_file, resolve_train_config
from cnnlstm.data import load_dataset
from cnnlstm.errors import ConfigError
from cnnlstm.fileio import read_history, read_json, run_lock
from cnnlstm.runs import load_checkpoint
from cnnlstm.study import sweep as S
from cnnlstm.study.experiment import train_run

from conftest import synthetic_arrays, write_dataset

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = {"epochs": 2, "limit_train": 100, "val_size": 40, "device": "cpu", "threads": 1, "verify": False}


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def noisy_dataset(folder: Path, n_train: int = 200) -> Path:
    """Synthetic IDX data with 40% random training labels (validation accuracy stays informative)."""
    arrays = synthetic_arrays(n_train=n_train, n_test=50, seed=1)
    rng = np.random.default_rng(0)
    noisy = rng.random(n_train) < 0.4
    arrays["train_labels"][noisy] = rng.integers(0, 10, int(noisy.sum()))
    return write_dataset(folder, arrays)


def settings_for(tmp_path: Path, data: Path, n: int, **kw) -> S.SweepSettings:
    out = tmp_path / "sweep"
    out.mkdir(exist_ok=True)
    fixed = {**TINY, "data_dir": str(data)}
    space = S.check_space(S.default_space("model1"), "model1", fixed)
    base = dict(model="model1", n_trials=n, out_dir=out, study_name="t", storage_url=S.default_storage(out),
                space=space, fixed=fixed, heartbeat_interval=1, seed=0)
    base.update(kw)
    return S.SweepSettings(**base)


# --------------------------------------------------------------------------- search space


def test_space_file_formats_parse_and_nest(tmp_path):
    toml = tmp_path / "space.toml"
    toml.write_text('lr = {type = "float", low = 1e-4, high = 1e-2, log = true}\n'
                    'optimizer = {type = "categorical", choices = ["adam", "adamw"]}\n'
                    'epochs = {type = "int", low = 1, high = 3}\n'
                    '[model_args]\ndropout = {type = "float", low = 0.0, high = 0.5, step = 0.1}\n')
    yaml_ = tmp_path / "space.yaml"
    yaml_.write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
                     "optimizer: {type: categorical, choices: [adam, adamw]}\n"
                     "epochs: {type: int, low: 1, high: 3}\n"
                     "model_args.dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}\n")
    a, b = S.load_space(toml), S.load_space(yaml_)
    assert a == b
    assert [p.name for p in a] == ["lr", "optimizer", "epochs", "model_args.dropout"]
    assert a[0].log and a[1].choices == ("adam", "adamw") and a[3].step == 0.1
    assert S.parse_space({p.name: p.to_dict() for p in a}) == a  # to_dict is the file form
    assert S.nest({"lr": 1, "model_args.dropout": 0.2}) == {"lr": 1, "model_args": {"dropout": 0.2}}


@pytest.mark.parametrize("spec, message", [
    ({"lr": {"type": "uniform", "low": 0, "high": 1}}, "type 'uniform'"),
    ({"lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "low < high"),
    ({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "low > 0"),
    ({"lr": {"type": "float", "low": 0.1, "high": 1.0, "choices": [1]}}, "does not take choices"),
    ({"optimizer": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"epochs": {"type": "int", "low": 1.5, "high": 3}}, "integer"),
    ({"lr": 0.1}, "must be a table with a type"),
])
def test_bad_space_entries_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        S.parse_space(spec)


def test_default_space_follows_the_model_and_set_fixes_keys():
    def names(model, fixed=None):
        return [p.name for p in S.check_space(S.default_space(model), model, fixed or {})]

    assert "model_args.lstm_hidden" in names("cnn_lstm") and "model_args.lstm_hidden" not in names("model1")
    assert {"lr", "weight_decay", "batch_size", "optimizer", "flip_h", "flip_v", "model_args.dropout"} <= set(
        names("model1"))
    pinned = names("cnn_lstm", {"lr": 1e-3, "model_args": {"lstm_hidden": 64}})
    assert "lr" not in pinned and "model_args.lstm_hidden" not in pinned
    with pytest.raises(ConfigError, match="'lrate' is not a config key"):
        S.check_space([S.Param("lrate", "float", low=0.1, high=1.0)], "model1", {})
    with pytest.raises(ConfigError, match="model_args.lstm_hidden"):
        S.check_space([S.Param("model_args.lstm_hidden", "int", low=8, high=9)], "model1", {})


def test_trial_config_precedence_preset_then_params_then_set():
    settings = S.SweepSettings(model="model1", n_trials=1, out_dir=Path("."), study_name="x", storage_url="",
                               preset="fast", fixed={"lr": 5e-3, "epochs": 1})
    cfg = S.trial_config(settings, {"lr": 1e-4, "weight_decay": 1e-5, "model_args.dropout": 0.25})
    assert cfg.lr == 5e-3 and cfg.epochs == 1  # --set wins
    assert cfg.weight_decay == 1e-5 and cfg.model_args == {"dropout": 0.25}  # the trial's values
    assert cfg.label_smoothing == 0.1  # from the preset


# --------------------------------------------------------------------------- one worker, in process


def test_sweep_trials_are_run_folders_and_sweep_json_summarises(tmp_path):
    data = noisy_dataset(tmp_path / "data")
    settings = settings_for(tmp_path, data, 3)
    study = S.run_sweep(settings, load_dataset(data, verify=False))
    summary = S.write_outputs(study, settings.out_dir)
    on_disk = read_json(settings.out_dir / "sweep.json")
    assert on_disk == json.loads(json.dumps(summary))
    assert set(on_disk) >= {"study", "direction", "best", "trials", "importances"}
    assert on_disk["direction"] == "maximize" and on_disk["study"] == "t"
    assert [t["state"] for t in on_disk["trials"]] == ["COMPLETE"] * 3
    for t in on_disk["trials"]:
        run = settings.out_dir / t["run_dir"]
        history = read_history(run / "history.csv")
        assert t["value"] == max(r["val_acc"] for r in history)  # objective = best validation accuracy
        assert not (run / "metrics.json").exists()  # trials never look at the test set
        assert read_json(run / "config.json")["lr"] == t["params"]["lr"]
        assert read_json(run / "trial.json")["state"] == "COMPLETE"
    best = max(on_disk["trials"], key=lambda t: t["value"])
    assert on_disk["best"]["value"] == best["value"] and on_disk["best"]["params"] == best["params"]
    assert set(on_disk["importances"]) <= {p.name for p in settings.space}
    assert abs(sum(on_disk["importances"].values()) - 1) < 1e-6 or on_disk["importances"] == {}
    for name in ("sweep_history.png", "sweep_importances.png"):
        assert (settings.out_dir / "figures" / name).stat().st_size > 1000


def test_same_seed_proposes_the_same_trials_and_workers_differ_per_trial(tmp_path):
    space = S.default_space("cnn_lstm")

    def params(seed, n):
        study = optuna.create_study(direction="maximize", sampler=S.make_sampler(seed))
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append({p.name: p.suggest(trial) for p in space})
            study.tell(trial, 0.5)
        return out

    a, b = params(7, 3), params(7, 3)
    assert a == b
    assert a[0] != a[1] != a[2]  # trial k draws from (seed, k): two workers never repeat each other
    assert params(8, 1)[0] != a[0]


def test_pruned_trial_leaves_a_consistent_resumable_run_folder(tmp_path):
    data = noisy_dataset(tmp_path / "data")
    settings = settings_for(tmp_path, data, 2, fixed={**TINY, "epochs": 3, "data_dir": str(data)})
    ds = load_dataset(data, verify=False)
    always = optuna.pruners.ThresholdPruner(lower=2.0)  # every accuracy is below 2: prune at epoch 1
    study = S.run_sweep(settings, ds, pruner=always)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    run = Path(trials[0].user_attrs["run_dir"])
    history = read_history(run / "history.csv")
    assert len(history) == 1 and trials[0].value == history[0]["val_acc"]
    assert load_checkpoint(run / "checkpoint.pt")["train_state"]["epoch"] == 1  # matches the history
    assert (run / "best.pt").is_file() and read_json(run / "trial.json")["state"] == "PRUNED"
    with run_lock(run):  # released: nothing holds the folder
        pass
    train_run(None, run, ds, resume=True, evaluate=False)  # and it resumes like any interrupted run
    assert len(read_history(run / "history.csv")) == 3


def test_diverging_trial_is_pruned_not_fatal(tmp_path):
    data = noisy_dataset(tmp_path / "data")
    space = [S.Param("lr", "float", low=1e20, high=1e21, log=True)]  # the loss overflows at once
    settings = settings_for(tmp_path, data, 1, space=space, fixed={**TINY, "data_dir": str(data),
                                                                   "optimizer": "sgd"})
    study = S.run_sweep(settings, load_dataset(data, verify=False))
    (trial,) = study.get_trials()
    assert trial.state.name == "PRUNED" and "non-finite loss" in trial.user_attrs["stopped"]


def test_surplus_trial_from_a_race_is_closed_unrun(tmp_path):
    study = optuna.create_study(direction="maximize")
    done = study.ask()
    study.tell(done, 0.5)
    racing = study.ask()  # another worker's trial, still running
    mine = study.ask()
    assert S.is_surplus(study, mine.number, 2) and not S.is_surplus(study, racing.number, 2)
    study.tell(mine, state=optuna.trial.TrialState.FAIL)  # what run_sweep does with it
    assert S.next_action(study, 2, can_wait=True) == "wait"
    assert S.next_action(study, 2, can_wait=False) == "stop"
    assert S.next_action(study, 3, can_wait=True) == "run"


# --------------------------------------------------------------------------- best config round trip


def test_best_config_round_trips_through_train_config(tmp_path, capsys):
    data = noisy_dataset(tmp_path / "data")
    settings = settings_for(tmp_path, data, 2, fixed={**TINY, "epochs": 1, "data_dir": str(data)})
    study = S.run_sweep(settings, load_dataset(data, verify=False))
    best = study.best_trial
    for suffix in ("toml", "yaml", "json"):
        path = tmp_path / f"best.{suffix}"
        assert main(["sweep", "--best", "t", "--storage", settings.storage_url, "--out", str(path), "-q"]) == 0
        cfg = resolve_train_config(config_file=path)
        assert config_to_dict(cfg) == best.user_attrs["config"]
    capsys.readouterr()  # only what `--best` prints from here on (a module fixture may have left INFO logging on)
    assert main(["sweep", "--best", "t", "--storage", settings.storage_url]) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out)
    assert load_config_file(printed)["lr"] == best.params["lr"]
    run = tmp_path / "retrained"
    assert main(["train", "--config", str(tmp_path / "best.toml"), "--out", str(run), "--no-eval", "-q"]) == 0
    assert read_json(run / "config.json") == best.user_attrs["config"]
    # the same config and seed retrain to the same validation accuracy as the trial
    assert read_history(run / "history.csv")[-1]["val_acc"] == best.value


@pytest.mark.parametrize("argv, message", [
    (["sweep", "model1"], "--trials N"),
    (["sweep", "--best", "x"], "needs --storage"),
    (["sweep", "model1", "--trials", "2", "--set", "val_size=0"], "validation split"),
    (["sweep", "model1", "--trials", "2", "--storage", "not-a-url"], "not a database URL"),
    (["sweep", "nosuchmodel", "--trials", "2"], "unknown model"),
])
def test_cli_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_space_file_error_names_the_key(tmp_path, capsys):
    space = tmp_path / "s.toml"
    space.write_text('learning_rate = {type = "float", low = 0.1, high = 1.0}\n')
    assert main(["sweep", "model1", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "o")]) == 2
    assert "'learning_rate' is not a config key" in capsys.readouterr().err


# --------------------------------------------------------------------------- worker processes


def _env() -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    return env


def worker(out: Path, data: Path, n: int, storage: str, *extra: str) -> subprocess.Popen:
    """``python -m cnnlstm sweep model1 ...`` as a separate process."""
    cmd = [sys.executable, "-m", "cnnlstm", "sweep", "model1", "--trials", str(n), "--storage", storage,
           "--study", "shared", "--out", str(out), "--data-dir", str(data), "--no-verify", "--device", "cpu",
           "--threads", "1", "--heartbeat", "1", "--grace", "2", "--set", "val_size=40", "-q", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*procs: subprocess.Popen, timeout: float = 240) -> None:
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]


def assert_study_holds(storage: str, n: int, out: Path) -> list:
    study = optuna.load_study(study_name="shared", storage=S.make_storage(storage))
    trials = study.get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == n, [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    for t in finished:  # each in its own complete run folder
        run = Path(t.user_attrs["run_dir"])
        assert run.parent == out.resolve() and len(read_history(run / "history.csv")) == t.last_step
        assert read_json(run / "trial.json")["number"] == t.number
    for t in trials:
        if t.user_attrs.get("surplus"):
            assert not (out / f"trial-{t.number}").exists()
    summary = read_json(out / "sweep.json")
    assert sum(1 for t in summary["trials"] if t["state"] in ("COMPLETE", "PRUNED")) == n
    return trials


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    data = noisy_dataset(tmp_path / "data")
    out = tmp_path / "sweep"
    out.mkdir()
    storage = S.default_storage(out)
    a = worker(out, data, 5, storage, "--set", "epochs=1", "--set", "limit_train=100")
    b = worker(out, data, 5, storage, "--set", "epochs=1", "--set", "limit_train=100")
    finish(a, b)
    assert_study_holds(storage, 5, out)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.02)


@pytest.mark.slow
def test_worker_killed_mid_trial_is_retried_from_its_checkpoint(tmp_path):
    data = noisy_dataset(tmp_path / "data", n_train=700)
    out = tmp_path / "sweep"
    out.mkdir()
    storage = S.default_storage(out)
    trial_flags = ("--set", "epochs=3", "--set", "limit_train=600", "--set", "batch_size=8", "--no-prune")
    doomed = worker(out, data, 3, storage, *trial_flags)
    try:
        _wait_for(out / "trial-0" / "checkpoint.pt", doomed)  # epoch 1 of 3 is done
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        doomed.kill()
    study = optuna.load_study(study_name="shared", storage=S.make_storage(storage))
    assert study.trials[0].state.name == "RUNNING"  # nobody told the study: it looks alive
    later = worker(out, data, 3, storage, *trial_flags)
    finish(later)
    trials = assert_study_holds(storage, 3, out)
    assert trials[0].state.name == "FAIL"
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 0)
    assert retry.params == trials[0].params and retry.state.name == "COMPLETE"
    first = read_history(out / "trial-0" / "history.csv")
    resumed = read_history(Path(retry.user_attrs["run_dir"]) / "history.csv")
    assert resumed[0] == first[0] and len(resumed) == 3  # continued from the dead attempt's epoch 1
    assert main(["sweep", "--best", "shared", "--storage", storage, "--out", str(tmp_path / "b.json"), "-q"]) == 0


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free loopback port; yields its URL, then removes it."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server absent (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    pytest.importorskip("psycopg2", reason="psycopg2 absent: pip install 'cnnlstm[postgres]'")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="cnnlstm-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            shutil.rmtree(root)
            pytest.skip("running as root without runuser to switch to the postgres user")
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True,  # noqa: E731
                                      text=True, timeout=120)
    run(pg / "initdb", "-D", root / "data", "-A", "trust", "-U", "cnnlstm", "--no-sync")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg / "pg_ctl", "-D", root / "data", "-o", opts, "-l", root / "log", "-w", "start")
    try:
        yield f"postgresql://cnnlstm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_share_one_postgres_study(tmp_path, postgres_url):
    data = noisy_dataset(tmp_path / "data")
    out = tmp_path / "sweep"
    out.mkdir()
    a = worker(out, data, 4, postgres_url, "--set", "epochs=1", "--set", "limit_train=100")
    b = worker(out, data, 4, postgres_url, "--set", "epochs=1", "--set", "limit_train=100")
    finish(a, b)
    assert_study_holds(postgres_url, 4, out)
    best = tmp_path / "best.toml"
    assert main(["sweep", "--best", "shared", "--storage", postgres_url, "--out", str(best), "-q"]) == 0
    assert resolve_train_config(config_file=best).model == "model1"


def test_library_info_lines_stay_out_of_a_commands_output(capsys):
    """alembic's "Context impl SQLiteImpl." once landed in the TOML `sweep --best` prints."""
    import logging

    from cnnlstm.cli import setup_logging

    setup_logging(debug=False, quiet=False)
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("sqlalchemy.engine").info("BEGIN (implicit)")
    logging.getLogger("cnnlstm.study.sweep").info("our own progress line")
    out = capsys.readouterr().out
    assert "Context impl" not in out and "BEGIN" not in out and "our own progress line" in out
