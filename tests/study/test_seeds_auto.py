"""``--seeds auto``: seeds are added until every primary interval is precise, or the cap; the rule
reads only the intervals' widths, and a grown study resumes without running a finished seed again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.errors import ConfigError
from cnnlstm.measure.stats import MARGIN, compare, precise_enough
from cnnlstm.study.engine.seeds import SeedRule, run_until_precise


def _study(effect: float, noise: float, sign: float = 1.0):
    """``run_at(n)`` of a synthetic study: one primary comparison of n paired seeds, and the n asked."""
    asked = []

    def run_at(n: int):
        asked.append(n)
        rng = np.random.default_rng(7)  # seed k's numbers never change as n grows: a resumed study
        d = sign * (effect + noise * rng.standard_normal(50)[:n])
        b = {k: 0.9 for k in range(n)}
        return {"n": n}, [compare("A", "B", {k: 0.9 + d[k] for k in range(n)}, b)]
    return run_at, asked


def test_a_large_effect_stops_at_the_first_batch():
    run_at, asked = _study(effect=0.02, noise=0.0005)
    out = run_until_precise(run_at, SeedRule())
    assert asked == [3] and out["seeds"] == 3 and "at most 0.50 points wide" in out["stopped"]


def test_pure_noise_runs_to_the_cap_in_batches():
    run_at, asked = _study(effect=0.0, noise=0.01)
    out = run_until_precise(run_at, SeedRule(max_seeds=8))
    assert asked == [3, 5, 7, 8] and out["seeds"] == 8 and "cap of 8 seeds" in out["stopped"]


def test_the_rule_reads_only_the_width_never_the_sign():
    for effect, noise in ((0.003, 0.002), (0.0, 0.003), (0.01, 0.004)):
        up, asked_up = _study(effect, noise, 1.0)
        down, asked_down = _study(effect, noise, -1.0)
        assert run_until_precise(up, SeedRule())["seeds"] == run_until_precise(down, SeedRule())["seeds"]
        assert asked_up == asked_down
    # the rule itself: an interval of width m is precise whichever side of 0 it lies on
    a, b = {0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.899, 1: 0.9, 2: 0.901}
    assert precise_enough([compare("A", "B", a, b)], MARGIN) == precise_enough([compare("B", "A", a, b)], MARGIN)


def test_no_interval_is_never_precise_and_bad_caps_are_refused():
    same = compare("A", "B", {0: 0.91, 1: 0.92}, {0: 0.90, 1: 0.91})  # identical differences: no interval
    assert not precise_enough([same])
    with pytest.raises(ConfigError):
        SeedRule(max_seeds=2).check()


def test_compare_with_seeds_auto_grows_and_resumes(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "model1", "model2", "--seeds", "auto", "--max-seeds", "4", "--workers", "1", "--preset", "paper",
            "--set", "epochs=1", "--set", "val_size=40", "--threads", "1", "--data-dir", str(tiny_data_dir),
            "--no-verify", "--out", str(out), "--quiet"]
    first = out / "runs" / "model1-s0" / "metrics.json"
    assert main(argv) == 0
    printed = capsys.readouterr().out
    seeds = sorted(p.name for p in (out / "runs").iterdir())
    n = int(printed.split("at ")[-1].split(" seeds")[0]) if "wide" in printed and "cap" not in printed else 4
    assert "seeds auto: " in printed and len(seeds) == 2 * n
    assert "Seeds chosen by precision (--seeds auto)" in (out / "report.md").read_text()
    before = first.stat().st_mtime_ns
    assert main(argv) == 0  # resumes: the seeds already run are not run again
    assert first.stat().st_mtime_ns == before
    rows = [json.loads((out / "runs" / s / "config.json").read_text())["seed"] for s in seeds]
    assert sorted(set(rows)) == list(range(n))


def test_reproduce_with_seeds_auto_says_why_it_stopped(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["reproduce", "--data-dir", str(tiny_data_dir), "--no-verify", "--limit-train", "60", "--tsne-samples", "0",
            "--threads", "1", "--workers", "1", "--models", "model1,model1_lstm", "--ablations", "none",
            "--seeds", "auto", "--max-seeds", "3", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == [f"{m}-s{s}" for m in ("model1", "model1_lstm") for s in range(3)]
    assert "Seeds chosen by precision (--seeds auto): " in (out / "report.md").read_text()
