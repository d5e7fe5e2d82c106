"""The Python API (``import cnnlstm``) and the quickstart notebook that uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnlstm
from cnnlstm.errors import ConfigError

from conftest import write_dataset

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
TINY = dict(epochs=2, batch_size=32, val_size=40, threads=1, seed=1, device="cpu")


def test_import_cnnlstm_is_cheap_and_lists_its_surface():
    code = ("import json, sys, cnnlstm; print(json.dumps({'heavy': [m for m in ('torch', 'numpy', 'cnnlstm.api', "
            "'cnnlstm.training.loop') if m in sys.modules], 'dir': dir(cnnlstm)}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["heavy"] == []
    assert {"load_dataset", "create_model", "list_models", "train", "load_run", "evaluate", "embed",
            "report"} <= set(out["dir"])


def test_step_names_are_the_api_functions_even_after_their_machinery_is_imported():
    """``cnnlstm.train`` & co. are plain functions of :mod:`cnnlstm.api`; importing the layers' modules
    (``cnnlstm.training.loop``, ``cnnlstm.reporting``) never rebinds them."""
    import types

    import cnnlstm.measure.embed
    import cnnlstm.reporting
    import cnnlstm.training.loop  # noqa: F401
    from cnnlstm import api

    for name in ("train", "evaluate", "embed", "report", "load_run"):
        value = getattr(cnnlstm, name)
        assert isinstance(value, types.FunctionType) and value is getattr(api, name), name


def test_api_checks_arguments_with_the_commands_one_line_errors(tmp_path, tiny_data_dir, capsys):
    """``cnnlstm.embed(run, samples=-1)`` raises the UserError the command prints as its one line."""
    from cnnlstm.cli import main

    tiny_run_dir = cnnlstm.train("model1", out=tmp_path / "run", data_dir=str(tiny_data_dir), verify=False,
                                 evaluate=False, **dict(TINY, epochs=1))
    capsys.readouterr()

    with pytest.raises(ConfigError) as api_error:
        cnnlstm.embed(tiny_run_dir, samples=-1)
    assert main(["embed", str(tiny_run_dir), "--samples", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cnnlstm embed: error: {api_error.value}" and "\n" not in err
    with pytest.raises(ConfigError, match="per_class must be >= 1"):
        cnnlstm.api.explain(tiny_run_dir, per_class=0)
    with pytest.raises(ConfigError, match="device must be"):
        cnnlstm.evaluate(tiny_run_dir, device="gpu")


def test_train_load_evaluate_embed_report_round_trip(tiny_data_dir, tmp_path):
    run_dir = cnnlstm.train("model1", out=tmp_path / "run", data_dir=str(tiny_data_dir), verify=False, **TINY)
    assert run_dir == tmp_path / "run"
    run = cnnlstm.load_run(run_dir)
    assert run.config.model == "model1" and run.config.epochs == 2 and len(run.history) == 2
    assert run.metrics["n_test"] == 50 and not run.model.training
    assert run.figure("history").is_file()
    with torch.no_grad():
        assert run.model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    again = cnnlstm.evaluate(run_dir, figures=False)  # the dataset comes from config.json
    assert again["accuracy"] == run.metrics["accuracy"]
    record = cnnlstm.embed(run_dir, samples=30, n_jobs=1)
    assert record["n"] == 30 and (run_dir / "figures" / "tsne.png").is_file()
    html = cnnlstm.report(run_dir)
    assert html == run_dir / "report.html" and html.is_file()


def test_train_takes_a_config_and_overrides_and_checks_them(tiny_ds, tmp_path):
    cfg = cnnlstm.TrainConfig(model="model1", verify=False, **TINY)
    run_dir = cnnlstm.train(cfg, out=tmp_path / "a", data=tiny_ds, evaluate=False, lr=0.0123, epochs=1)
    saved = cnnlstm.load_run(run_dir, which="last").config
    assert (saved.lr, saved.epochs, saved.batch_size) == (0.0123, 1, 32)
    with pytest.raises(ConfigError, match="seq_axis"):
        cnnlstm.train("cnn_lstm", out=tmp_path / "b", data=tiny_ds, model_args={"seq_axis": "diag"})
    assert not (tmp_path / "b").exists()


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    """examples/quickstart.ipynb, executed with its settings cell swapped for tiny synthetic data."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the test extras: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the test extras: pip install -e '.[test]'")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(settings) == 1
    data_dir = write_dataset(tmp_path / "data")
    settings[0].source = "\n".join([
        'MODEL = "cnn_lstm"',
        f"DATA_DIR = {str(data_dir)!r}",
        "VERIFY = False",
        'SETTINGS = dict(epochs=2, batch_size=32, val_size=40, threads=1, model_args={"channels": [8, 16], '
        '"lstm_hidden": 8})',
        f"OUT = {str(tmp_path / 'run')!r}",
        "TSNE_SAMPLES = 40",
    ])
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel shows figures inline, as in Jupyter
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the curves (matplotlib and the run's figure), the confusion matrix, the t-SNE
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "embed.json").is_file()


# --------------------------------------------------------------------------- data specs (issue 34, item 4)

#: Public API functions that load no dataset, and why; every other one takes ``data=`` as a spec.
NO_DATASET = {
    "load_run": "loads a run's config, weights and records, never its images",
    "report": "reads finished folders",
    "build_report": "report's work: reads finished folders",
    "default_report_path": "a path",
}


def test_every_api_function_that_loads_data_takes_a_data_spec_and_an_image_size():
    """Wherever the CLI takes --data and --image-size, the API takes ``data=`` (a spec string among
    its types) and ``image_size=`` (``train``: among its config-key overrides)."""
    import inspect

    from cnnlstm import api

    functions = {name: getattr(api, name) for name in api.__all__ if inspect.isfunction(getattr(api, name))}
    assert set(NO_DATASET) <= set(functions) and "regimes" in functions
    for name, function in functions.items():
        params = inspect.signature(function).parameters
        if name in NO_DATASET:
            assert "data" not in params, name
            continue
        assert "data" in params and "str" in str(params["data"].annotation), (name, params.get("data"))
        takes_overrides = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        assert "image_size" in params or (name == "train" and takes_overrides), name


def test_train_evaluate_and_explore_take_a_data_spec(tmp_path, tiny_ds):
    """``cnnlstm.train("model1", data="DIR", image_size=32)`` trains on the folder, resized, and records
    the spec; evaluate and explore take specs too, and a run refuses data it was not trained on."""
    import numpy as np
    from data.test_folders import rgb_arrays, write_png_folder

    from cnnlstm.errors import UserError

    folder = write_png_folder(tmp_path / "pets", rgb_arrays(36, n_train=30, n_test=9))
    run_dir = cnnlstm.train("model1", out=tmp_path / "run", data=str(folder), image_size=32, evaluate=False,
                            **dict(TINY, epochs=1, batch_size=16, val_size=6))
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["data"] == str(folder.resolve()) and saved["image_size"] == 32
    assert cnnlstm.evaluate(run_dir, data=folder, figures=False)["n_test"] == 9  # a path is a spec too
    npz = tmp_path / "other.npz"
    other = rgb_arrays(32, n_train=12, n_test=6)
    np.savez(npz, x_train=other["train_images"], y_train=other["train_labels"], x_test=other["test_images"],
             y_test=other["test_labels"])
    with pytest.raises(UserError, match="the run was trained on"):
        cnnlstm.evaluate(run_dir, data=str(npz), figures=False)
    stats = cnnlstm.api.explore(tmp_path / "explore", data=str(folder), image_size=32, tsne_samples=0)
    assert stats["splits"]["train"]["n"] == 30
    with pytest.raises(ConfigError, match="image_size goes with a data spec"):
        cnnlstm.api.explore(tmp_path / "explore", data=tiny_ds, image_size=32, tsne_samples=0)


def test_study_functions_take_a_data_spec(tmp_path, monkeypatch):
    """``regimes``/``compare``/``reproduce`` load the spec (with ``image_size``) as their runs will."""
    from data.test_folders import rgb_arrays, write_png_folder

    from cnnlstm.study import regimes as R

    folder = write_png_folder(tmp_path / "pets", rgb_arrays(36, n_train=30, n_test=9))
    seen = []
    monkeypatch.setattr(R, "measure_rate", lambda ds, threads=0: seen.append(ds) or 1.0)
    result = cnnlstm.regimes(out=tmp_path / "regimes", seeds=1, sizes=[12], widths=[(8, 16)], size_pairs=False,
                             data=str(folder), image_size=32, dry_run=True)
    assert result["cost"]["train_runs"] == 2
    assert [(ds.image_size, ds.channels, ds.num_classes) for ds in seen] == [(32, 3, 3)]
