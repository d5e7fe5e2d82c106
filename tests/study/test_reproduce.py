"""`cnnlstm reproduce`: the study on tiny data, its report, and resuming after a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnlstm.cli import main
from cnnlstm.config import config_to_dict, resolve_train_config
from cnnlstm.data import load_dataset
from cnnlstm.study.engine.jobs import recipe_changes
from cnnlstm.study.paper import run_study, write_study_report
from cnnlstm.study.paper.plan import CONTROL_PAIRS, CORE_MODELS, STUDY_PRESETS, plan_jobs

from conftest import assert_raw_numbers_recompute

ARGS = ["--no-verify", "--limit-train", "60", "--tsne-samples", "120", "--threads", "1", "--workers", "1", "--quiet"]


def test_plan_covers_the_study():
    jobs = plan_jobs(STUDY_PRESETS["paper"])
    trained = {j.cfg.model for j in jobs if j.kind == "train"}
    assert trained == {"model1", "model2", "tf_cnn", "cnn_svm", "ji_cnn_lstm", "model1_lstm", "model2_lstm",
                       "parallel_cnn_lstm", "cnn_lstm", "cnn_twin", "cnn_gap"}
    assert sum(j.kind == "train" and j.cfg.model == "model1" for j in jobs) == 3  # 3 seeds
    abl = {j.name for j in jobs if j.group == "ablation"}
    assert {"no_flip-s0", "no_batchnorm-s0", "no_dropout-s0", "adam-s0", "nadam-s0", "sgd-s0"} <= abl
    sgd = next(j for j in jobs if j.name == "sgd-s0")
    assert sgd.cfg.optimizer == "sgd" and sgd.cfg.model == "cnn_lstm"
    nobn = next(j for j in jobs if j.name == "no_batchnorm-s1")
    assert nobn.cfg.model_args["batch_norm"] is False and nobn.cfg.seed == 1
    assert next(j for j in jobs if j.name == "cnn_svm-s0").cfg.loss == "svm"
    # ablations run at the flagship's full schedule, never a shortened one
    flagship = next(j for j in jobs if j.name == "cnn_lstm-s0").cfg
    assert all(j.cfg.epochs == flagship.epochs for j in jobs if j.group == "ablation")


def test_more_seeds_change_how_many_never_which_models():
    """`reproduce --preset quick --seeds 5` must not start the references' hours of training."""
    from cnnlstm.study.paper.plan import REFERENCE_MODELS

    quick = STUDY_PRESETS["quick"]
    jobs = [j for j in plan_jobs(quick, seeds=5) if j.kind == "train"]
    trained = {j.cfg.model for j in jobs}
    assert not trained & set(REFERENCE_MODELS)
    assert trained == {j.cfg.model for j in plan_jobs(quick) if j.kind == "train"}
    assert sum(j.cfg.model == "model1" for j in jobs) == 5
    assert not any(j.group == "ablation" for j in jobs)
    # naming a reference still trains it, at the seeds asked for
    named = [j for j in plan_jobs(quick, seeds=2, models=("tf_cnn",)) if j.kind == "train"]
    assert [j.name for j in named] == ["tf_cnn-s0", "tf_cnn-s1"]


def _training_settings(cfg) -> dict:
    from cnnlstm.config import config_to_dict
    from cnnlstm.reporting.compare import PAIR_KEYS

    return {k: v for k, v in config_to_dict(cfg).items() if k not in PAIR_KEYS}


def test_quick_study_pairs_each_hybrid_with_its_control_at_equal_schedule_over_3_seeds():
    jobs = [j for j in plan_jobs(STUDY_PRESETS["quick"]) if j.kind == "train"]
    by_model: dict[str, list] = {}
    for j in jobs:
        by_model.setdefault(j.cfg.model, []).append(j.cfg)
    for hybrid, control in (("model1_lstm", "model1"), ("model2_lstm", "model2"), ("cnn_lstm", "cnn_twin")):
        assert (hybrid, control) in CONTROL_PAIRS and hybrid in CORE_MODELS and control in CORE_MODELS
        assert sorted(c.seed for c in by_model[hybrid]) == sorted(c.seed for c in by_model[control]) == [0, 1, 2]
        for h, c in zip(by_model[hybrid], by_model[control]):
            assert _training_settings(h) == _training_settings(c), (hybrid, control)
    # the twin shares the flagship's stem
    assert by_model["cnn_twin"][0].model_args["channels"] == by_model["cnn_lstm"][0].model_args["channels"]
    # nothing one epoch long is reported as an ablation finding: quick runs no ablations
    assert not any(j.group == "ablation" for j in jobs)


def test_tiny_study_writes_report_with_both_tables(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "study"
    rc = main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(out),
               "--models", "model1,model2,model1_lstm,cnn_lstm,cnn_twin", "--ablations", "all_on,no_flip",
               "--seeds", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    assert "could it have seen a benefit? measure a positive control: cnnlstm compare spoerer_bl" in printed
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    benefit = md.split("## Could this study have seen a benefit?", 1)[1].split("\n## ", 1)[0]
    assert "MDE (points)" in benefit and "--positive-control DIR" in benefit
    assert benefit.count("| model1_lstm vs model1 |") == 1  # each hybrid-vs-control pair, with its MDE
    for text in ("Table I: published methods vs measured here", "Table II: the plan&#x27;s baselines",
                 "Model I (plan Table II)", "86.55", "CNN+LSTM (Ji 2022)", "91.36", "Ablations of the flagship",
                 "not verified Fashion-MNIST", "What the LSTM adds", "95% CI over seeds", "cnn_twin",
                 "McNemar p", "Calibration", "ECE after scaling", "Robustness to corruptions",
                 "mCE vs model1", "Where the flagship looks"):
        assert text in html, text
    assert "| Model II (plan Table II) | 86.28 |" in md
    # 60 training images: no row of Tables I and II is compared with its published number
    table_two = md.split("## Table II", 1)[1].split("\n## ", 1)[0]
    assert table_two.count("trained on 60 of 55,000 images: not comparable") == 2 and "| +" not in table_two
    assert "Training set: 60 images per run (shortened)" in md
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "places the flagship" not in summary  # a 2-epoch flagship is not set beside Ji's published number
    for line in summary.splitlines():
        if " beat " in line:  # every claim of a win carries its interval and n
            assert "95% CI" in line and "seeds" in line, line
    assert "data:image/png;base64," in html and "http://" not in html.split("<body")[0]
    assert (out / "runs/model1-s0/metrics.json").exists() and (out / "ablations/no_flip-s0/metrics.json").exists()
    assert (out / "explore/stats.json").exists()
    # the raw numbers: both hybrid-vs-control pairs and the ablation recompute from results.csv
    assert assert_raw_numbers_recompute(out) == 3
    assert (out / "figures/forest.png").is_file() and "figures/forest.png" in md  # the pairs' forest plot
    embedded = sorted(p.parent.name for p in out.glob("runs/*/embed.json"))
    assert len(embedded) == 2  # the best baseline and the best hybrid, picked on validation accuracy
    assert "\n- " in summary  # the claims are Markdown list items
    assert md.count("explore/figures/duplicates.png") == 1  # the audit's figure, not again among explore's
    assert_summary_is_a_list_in_chromium(out / "report.html", tmp_path / "profile")
    # a positive control read from an earlier study folder (here this one's own comparisons.csv)
    from cnnlstm.reporting.page import markdown_page
    from cnnlstm.reporting.raw import read_csv
    from cnnlstm.study.paper.sections import positive_control_section

    section = positive_control_section(out, read_csv(out / "comparisons.csv")[:1])
    text = markdown_page("t", [section], out)
    assert f"read from {out}" in text and "| fashion-mnist | model1_lstm vs model1 | 2 |" in text
    capsys.readouterr()
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(tmp_path / "other"),
                 "--positive-control", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no comparisons.csv" in err and not (tmp_path / "other").exists()


def assert_summary_is_a_list_in_chromium(html: Path, profile: Path) -> None:
    """The summary's claims, one per control pair, are a ``<ul>`` as a browser parses the page."""
    import shutil

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (make test installs it as root)")
    done = subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--dump-dom",
                           html.as_uri()], capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stdout.split(">Summary</h2>", 1)[1].split("<h2", 1)[0]
    items = re.findall(r"<li>(.*?)</li>", summary.split("<ul>", 1)[1].split("</ul>", 1)[0], re.S)
    pairs = [("model1_lstm", "model1"), ("cnn_lstm", "cnn_twin")]
    assert len(items) == len(pairs) and all(h in i and c in i for (h, c), i in zip(pairs, items)), items
    assert "<p>- " not in summary  # no list syntax left inside a paragraph


def test_unknown_model_or_ablation_is_a_one_line_error(tiny_data_dir, tmp_path, capsys):
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--models", "nosuch"]) == 2
    assert main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--ablations", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("cnnlstm reproduce: error:") for e in err)


def test_killed_study_resumes_without_redoing_finished_runs(tiny_data_dir, tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "cnnlstm", "reproduce", "--data-dir", str(tiny_data_dir), *ARGS,
           "--out", str(out), "--models", "model1,model2", "--tsne-samples", "0"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "runs/model1-s0/metrics.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the first run never finished"
    stamp = first.stat().st_mtime_ns, (out / "runs/model1-s0/best.pt").stat().st_mtime_ns
    ds = load_dataset(tiny_data_dir, verify=False)
    preset = STUDY_PRESETS["quick"]
    jobs = plan_jobs(preset, common={"data_dir": str(tiny_data_dir), "verify": False, "limit_train": 60,
                                     "threads": 1}, models=("model1", "model2"))
    summary = run_study(out, ds, preset.__class__(**{**preset.__dict__, "tsne_samples": 0}), jobs=jobs)
    assert summary["skipped"] >= 1
    assert (first.stat().st_mtime_ns, (out / "runs/model1-s0/best.pt").stat().st_mtime_ns) == stamp
    assert (out / "runs/model2-s0/metrics.json").exists()
    assert write_study_report(out, summary["jobs"], preset, ds).exists()


def test_a_study_folder_of_another_recipe_is_refused_not_reported(tiny_data_dir, tmp_path, capsys):
    """After a preset changes, its old runs must not be resumed or reported as the new recipe's."""
    import json

    out = tmp_path / "study"
    jobs = plan_jobs(STUDY_PRESETS["quick"], common={"data_dir": str(tiny_data_dir), "verify": False},
                     models=("model1",))
    job = next(j for j in jobs if j.kind == "train")
    folder = job.folder(out)
    folder.mkdir(parents=True)
    saved = config_to_dict(job.cfg)
    # another machine, thread count or data folder is the same recipe ...
    (folder / "config.json").write_text(json.dumps({**saved, "threads": 7, "data_dir": "/elsewhere"}))
    assert recipe_changes(job, out) == []
    # ... another batch size is not
    (folder / "config.json").write_text(json.dumps({**saved, "batch_size": saved["batch_size"] * 2}))
    assert recipe_changes(job, out) == [f"batch_size {saved['batch_size'] * 2} vs {saved['batch_size']}"]
    rc = main(["reproduce", "--data-dir", str(tiny_data_dir), *ARGS, "--out", str(out), "--models", "model1",
               "--tsne-samples", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trained with another recipe" in err[0] and "batch_size" in err[0]
    assert not (folder / "metrics.json").exists()  # nothing was trained into the stale folder


def test_the_job_log_appends_one_row_per_job_and_skips_a_cut_last_line(tmp_path):
    from cnnlstm.study.engine.joblog import append_job_row, read_job_log
    from cnnlstm.study.engine.jobs import Job
    from cnnlstm.study.paper.sections import job_time_rows, time_section

    assert read_job_log(tmp_path) == [] and time_section(tmp_path) is None
    append_job_row(tmp_path, Job("train", "model1-s0", "baseline"), 12.5, None, "this process (h pid 1)")
    append_job_row(tmp_path, Job("train", "cnn_lstm-s0", "flagship"), 30.0, None, "w1")
    append_job_row(tmp_path, Job("embed", "model1-s0", "embed"), 4.0, "RunError: no, really", "w2")
    with open(tmp_path / "jobs.csv", "a") as f:
        f.write("2026-12-02T10:00:00+00:00,model2-s0,tra")  # a driver killed mid-write
    rows = read_job_log(tmp_path)
    assert [(r["job"], r["status"], r["seconds"]) for r in rows] == [
        ("model1-s0", "done", 12.5), ("cnn_lstm-s0", "done", 30.0), ("embed model1-s0", "failed", 4.0)]
    assert rows[2]["error"] == "RunError: no, really"
    by_kind = {r["kind"]: r for r in job_time_rows(rows)}
    assert by_kind["train"]["done"] == 2 and by_kind["train"]["total"] == "0.7 min"
    assert by_kind["train"]["median"] == "21.2 s" and by_kind["train"]["longest"] == "cnn_lstm-s0 (30 s)"
    assert by_kind["embed"]["done"] == 0 and by_kind["embed"]["failed"] == 1
    append_job_row(tmp_path, Job("explore", "explore", "explore"), 1.0, None, "w1")
    assert [r["kind"] for r in job_time_rows(read_job_log(tmp_path))] == ["explore", "train", "embed"]  # run order


def test_single_seed_ablations_are_said_to_show_nothing_rather_than_no_change():
    from types import SimpleNamespace

    from cnnlstm.measure.stats import SeedInterval
    from cnnlstm.study.paper.report import summary_text

    one = {"no_flip": SimpleNamespace(seeds=SeedInterval(1, True, 0.0038, None, None, None), kind="no interval")}
    lines = summary_text({}, [], one, STUDY_PRESETS["paper"])
    assert any("one seed each, so none can show a change" in line for line in lines), lines
    three = {"no_flip": SimpleNamespace(seeds=SeedInterval(3, True, 0.001, -0.002, 0.004, 0.5), kind="inconclusive")}
    lines = summary_text({}, [], three, STUDY_PRESETS["paper"])
    assert any(line.startswith("No ablation changed the flagship at 3 seeds after Holm over the 1 ablations: "
                               "0 equivalent within the margin, 1 inconclusive") for line in lines), lines


def test_a_cluster_starts_the_costliest_jobs_first():
    from types import SimpleNamespace

    from cnnlstm.study.engine.executor import DaskExecutor
    from cnnlstm.study.engine.jobs import AnalysisArgs, job_priority, train_weight

    jobs = plan_jobs(STUDY_PRESETS["paper"], seeds=1)
    weights = {j.name: j.weight for j in jobs}
    ranked = sorted(weights, key=weights.get, reverse=True)
    assert ranked[:2] == ["tf_cnn-s0", "cnn_svm-s0"]  # the 36- and 23-epoch references: the long poles
    fast_epochs = resolve_train_config("cnn_lstm", preset="fast").epochs
    assert weights["cnn_lstm-s0"] == pytest.approx(fast_epochs, rel=1e-2)  # the unit: an epoch of the fast flagship
    assert weights["model1-s0"] < weights["cnn_twin-s0"] < weights["cnn_lstm-s0"] < weights["ji_cnn_lstm-s0"]
    flagship = next(j for j in jobs if j.name == "cnn_lstm-s0").cfg
    from dataclasses import replace

    assert train_weight(replace(flagship, train_size=5_500)) == pytest.approx(fast_epochs / 10, rel=1e-2)  # a tenth

    submitted = []
    client = SimpleNamespace(submit=lambda *a, **kw: submitted.append(kw) or object(),
                             scatter=lambda *a, **kw: "dataset")
    executor = DaskExecutor(client)
    for job in jobs:
        executor._submit(job, Path("/nonexistent-study"), "dataset", AnalysisArgs(), lambda job: None)
    priorities = {kw["key"].rsplit("-", 1)[0]: kw["priority"] for kw in submitted}
    assert priorities["tf_cnn-s0"] == job_priority(jobs[[j.name for j in jobs].index("tf_cnn-s0")])
    assert max(priorities, key=priorities.get) == "tf_cnn-s0"
    assert min(priorities, key=priorities.get) == "model1-s0"


def test_a_job_log_that_cannot_be_written_does_not_stop_the_study(tmp_path, caplog):
    from cnnlstm.study.engine.joblog import JOB_LOG, JobEvents, with_job_log
    from cnnlstm.study.engine.jobs import Job

    (tmp_path / JOB_LOG).mkdir()  # opening it to append fails, as on a full or read-only disk
    ended = []
    events = with_job_log(JobEvents(on_end=lambda job, s, e, w: ended.append(job.name)), tmp_path)
    events.on_end(Job("train", "model1-s0", "baseline"), 1.0, None, "here")
    assert ended == ["model1-s0"] and "could not log model1-s0" in caplog.text
