"""The smaller things a newcomer trips on (issue 34, item 6), each through the command a newcomer runs:
other data refused for what it is, model sizes as the presets train them, one source line, LSTM steps
in words, "did you mean" for a model name, predict's exit status, and progress for the slow steps."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from data.test_folders import rgb_arrays, write_png_folder
from PIL import Image

import cnnlstm
from cnnlstm.cli import main
from cnnlstm.errors import ConfigError

from conftest import synthetic_arrays


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """model1 trained for 1 epoch through the CLI on a 36 px RGB folder, resized with --image-size 32."""
    root = tmp_path_factory.mktemp("newcomer")
    folder = write_png_folder(root / "pets", rgb_arrays(36, n_train=30, n_test=9))
    run = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        assert main(["train", "model1", "--data", str(folder), "--image-size", "32", "--epochs", "1",
                     "--batch-size", "16", "--val-size", "6", "--device", "cpu", "--threads", "1", "--no-eval",
                     "--out", str(run), "--quiet"]) == 0
    return folder, run


@pytest.mark.parametrize("command", ["evaluate", "embed"])
def test_other_data_is_refused_for_what_it_is_not_for_an_image_size_nobody_gave(command, folder_run, tiny_data_dir,
                                                                               capsys):
    """A run trained on a folder with --image-size 32, given --data fashion-mnist: the run's size is not
    carried onto a dataset that has its own, so the answer names the data the run was trained on."""
    folder, run = folder_run
    data = ["--data", "fashion-mnist", "--data-dir", str(tiny_data_dir), "--no-verify", "--quiet"]
    assert main([command, str(run), *data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image_size" not in err[0], err
    assert f"the run was trained on --data {folder.resolve()}, not fashion-mnist" in err[0]
    assert main([command, str(run), *data, "--image-size", "32"]) == 2  # given, it is the error
    assert "image_size is for image folders" in capsys.readouterr().err


def test_models_shows_the_sizes_the_presets_train(monkeypatch, capsys):
    """cnn_lstm's builder defaults and, labelled, the fast preset's size that every study trains."""
    import cnnlstm.models
    from cnnlstm.config import load_preset
    from cnnlstm.models import model_summary

    monkeypatch.setattr(cnnlstm.models, "list_models", lambda: ["model1", "cnn_lstm"])  # two are enough
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    fast = model_summary("cnn_lstm", **load_preset("fast", "cnn_lstm")["model_args"])
    assert rows["cnn_lstm"]["params"] == model_summary("cnn_lstm")["params"] != fast["params"]
    assert rows["cnn_lstm"]["presets"]["fast"]["params"] == fast["params"]
    assert rows["cnn_lstm"]["presets"]["fast"]["mflops"] == fast["mflops"]
    assert rows["model1"]["presets"] == {}  # no preset changes its size
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    fast_row = next(line for line in table.splitlines() if "--preset fast" in line)
    assert f"{fast['params']:,}" in fast_row and f"{fast['mflops']:.2f}" in fast_row


def test_data_names_its_source_once(tiny_data_dir, capsys):
    """One line says where the files are, in words; the loader's own line is not repeated, and the
    second load (from the decoded-array cache) does not change the word."""
    for _ in range(2):
        assert main(["data", "--data-dir", str(tiny_data_dir), "--no-verify"]) == 0
        captured = capsys.readouterr()
        text = "".join((captured.out + captured.err).split())  # rich wraps long lines
        assert text.count(str(tiny_data_dir)) == 1, captured
        assert "(cache)" not in text and "source:" + str(tiny_data_dir) + "(namedby--data-dir" in text


@pytest.mark.parametrize("axis, words", [("rows", "7 LSTM steps (one per row of the feature map)"),
                                         ("cols", "7 LSTM steps (one per column of the feature map)")])
def test_explain_says_what_a_step_is(axis, words, monkeypatch, tmp_path, capsys):
    from cnnlstm import api

    record = {"grad_cam": {"layer": "stem.3"}, "steps": {"n_steps": 7, "seq_axis": axis}, "step_profile": None,
              "worst_class_name": "Shirt", "mistakes": [], "seconds": 1.0}
    monkeypatch.setattr(api, "explain", lambda run_dir, **kw: record)
    assert main(["explain", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"step attribution over {words}" in out and f"{axis} steps" not in out


def test_a_mistyped_model_name_gets_did_you_mean(tmp_path, monkeypatch, tiny_ds, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "cnn_lsmt", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'cnn_lsmt' (did you mean 'cnn_lstm'?); valid: " in err[0], err
    assert main(["models", "--args", "modle1"]) == 2
    assert "(did you mean 'model1'?)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"unknown model 'modl1' \(did you mean 'model1'\?\)"):
        cnnlstm.train("modl1", out=tmp_path / "x", epochs=1)
    with pytest.raises(ConfigError, match=r"\(did you mean 'cnn_twin'\?\)"):
        cnnlstm.compare(["cnn_lstm", "cnn_twn"], data=tiny_ds, seeds=1, out=tmp_path / "cmp")
    with pytest.raises(ConfigError) as far:
        cnnlstm.train("zzzz", out=tmp_path / "y", epochs=1)
    assert "did you mean" not in str(far.value)  # nothing close: no guess
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no run folder was started


def test_predict_exit_status_tells_some_from_all_failed(done_run, tmp_path, capsys):
    """0 every file predicted; 1 some failed, the rest predicted; 2 none could be (every file failed);
    and --help says so."""
    good = tmp_path / "good.png"
    Image.fromarray(synthetic_arrays()["test_images"][0]).save(good)
    text = tmp_path / "text.png"
    text.write_text("hello, not a picture\n")
    assert main(["predict", str(done_run), str(good), "-q"]) == 0
    assert main(["predict", str(done_run), str(good), str(text), "-q"]) == 1
    assert main(["predict", str(done_run), str(text), str(text), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("not an image" in line for line in err)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "1 some files failed (each named on stderr); the others were predicted" in help_text
    assert "2 nothing was predicted: a usage error" in help_text and "or every file failed" in help_text


def test_evaluate_and_explore_show_progress_while_they_work(folder_run, tmp_path, monkeypatch):
    """The figures of evaluate and explore's audit and t-SNE run under a spinner (on a terminal)."""
    import cnnlstm.cli.evaluate_cmd
    import cnnlstm.cli.explore_cmd

    shown = []

    @contextmanager
    def spinner(quiet, what, **kw):
        shown.append(what)
        yield

    monkeypatch.setattr(cnnlstm.cli.evaluate_cmd, "working", spinner)
    monkeypatch.setattr(cnnlstm.cli.explore_cmd, "working", spinner)
    folder, run = folder_run
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert main(["explore", "--data", str(folder), "--image-size", "32", "--tsne-samples", "20", "--jobs", "1",
                 "--perplexity", "5", "--out", str(tmp_path / "explore"), "--quiet"]) == 0
    assert shown[0] == f"evaluating {run} on 9 test images and drawing its figures"
    assert shown[1].startswith("exploring 39 images: statistics, figures, duplicate audit, then a t-SNE of 20")


def test_the_spinner_stays_off_when_quiet_or_off_a_terminal(capsys):
    from cnnlstm.cli.common import working

    for quiet, live in ((True, True), (False, False)):
        with working(quiet, "drawing", live=live):
            pass
    assert capsys.readouterr() == ("", "")


def test_help_is_built_without_the_training_stack():
    """`cnnlstm --help` builds every command's parser without importing torch or matplotlib."""
    import subprocess
    import sys

    code = ("import sys; from cnnlstm.cli import build_parser; build_parser(); "
            "print(','.join(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", done.stdout
    import cnnlstm.study.paper as paper  # the names it exports still resolve, on first use

    assert callable(paper.run) and callable(paper.run_study) and "quick" in paper.STUDY_PRESETS
    with pytest.raises(AttributeError):
        paper.no_such_name  # noqa: B018
