"""Shared fixtures: tiny synthetic IDX datasets, an isolated cache, stopping a run on cue, real-data skips."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REAL_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (magic 0x0000 08 ndim, big-endian dims, payload)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def synthetic_arrays(n_train: int = 200, n_test: int = 50, size: int = 28, n_classes: int = 10, seed: int = 0):
    """Images whose class is learnable: class c lights up a horizontal band at row 2c+4 plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % n_classes
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
        for i, c in enumerate(labels):
            r = (2 * c + 4) % (size - 2)
            images[i, r:r + 2, 3:size - 3] = 200 + (c % 5) * 10
        return images, labels.astype(np.uint8)

    (tri, trl), (tei, tel) = make(n_train), make(n_test)
    return {"train_images": tri, "train_labels": trl, "test_images": tei, "test_labels": tel}


STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_dataset(folder: Path, arrays: dict | None = None, *, gz: bool = True) -> Path:
    """Write the four IDX files of ``arrays`` (default: synthetic) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays if arrays is not None else synthetic_arrays()
    for key, stem in STEMS.items():
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (folder / stem).write_bytes(data)
    return folder


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder and no $CNNLSTM_DATA, so nothing leaks between tests."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("CNNLSTM_DATA", raising=False)
    return cache


@pytest.fixture(autouse=True)
def _restore_logging():
    """``cli.main`` reconfigures the root logger (level, a handler writing to stdout); give the next
    test the logging it had, so no test's output depends on which command ran before it."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def tiny_data_dir(tmp_path) -> Path:
    """A folder holding a tiny synthetic IDX dataset (200 train, 50 test, 10 classes)."""
    return write_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_ds(tiny_data_dir):
    """The tiny synthetic dataset, loaded (unverified: it is not Fashion-MNIST)."""
    from cnnlstm.data import load_dataset

    return load_dataset(tiny_data_dir, verify=False)


class Stop(Exception):
    """Raised by a test's callback to stop a run at a chosen point (as a crash would)."""


def stop_after(epoch: int):
    """An ``on_epoch`` callback raising :class:`Stop` once ``epoch`` is done (its checkpoint written)."""
    def on_epoch(row):
        if row["epoch"] == epoch:
            raise Stop
    return on_epoch


def real_data_available() -> bool:
    return all((REAL_DATA_DIR / f"{s}.gz").is_file() for s in STEMS.values())


requires_real_data = pytest.mark.skipif(
    not real_data_available(),
    reason="real Fashion-MNIST absent: `apt-get install dataset-fashion-mnist` (make test does this as root)")


#: Test modules whose tests start servers, clusters or process groups of their own: under
#: pytest-xdist they share one worker (``--dist loadgroup``), so two of them never overlap.
PROCESS_MODULES = ("test_executor.py", "test_distributed.py", "test_processes.py", "test_sweep.py")


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep tests to the cores they have: 2 threads (the CI machine has 2 cores), 1 per xdist worker."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2))
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "realdata" in item.keywords and not real_data_available():
            item.add_marker(requires_real_data)
        if item.path.name in PROCESS_MODULES:
            item.add_marker(pytest.mark.xdist_group("processes"))
    os.environ.setdefault("MPLBACKEND", "Agg")


def record_conv_dtypes(monkeypatch) -> set:
    """Patch training so the first Conv2d records the dtypes it outputs while in training mode.

    Returns the set that fills as training runs (e.g. ``{torch.bfloat16}`` under bf16 autocast).
    """
    import torch

    from cnnlstm.study import experiment

    dtypes: set = set()
    real_fit = experiment.fit

    def fit_with_probe(model, *args, **kwargs):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype) if m.training else None)
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(experiment, "fit", fit_with_probe)
    return dtypes


def tiny_cfg(**kw):
    """A small validated TrainConfig (model1, 3 epochs of batch 32, cosine) for loop and optimizer tests."""
    from cnnlstm.config import TrainConfig

    base = dict(model="model1", epochs=3, batch_size=32, val_size=40, lr=3e-3, optimizer="adam",
                schedule="cosine", device="cpu", verify=False, seed=3)
    base.update(kw)
    return TrainConfig(**base).validate()


# the reliability tests' run folders (tests/reliability/)
def tiny_model1_run_config(data_dir: Path, epochs: int):
    """model1 on the tiny synthetic data, one CPU thread, batch 16."""
    from cnnlstm.config import resolve_train_config

    return resolve_train_config("model1", overrides=dict(
        data_dir=str(data_dir), verify=False, device="cpu", threads=1, epochs=epochs, batch_size=16, val_size=40))


@pytest.fixture
def half_run(tiny_data_dir, tmp_path) -> Path:
    """A run folder of 2 epochs that stopped after epoch 1 (so ``--resume`` has work to do)."""
    from cnnlstm.data import load_dataset
    from cnnlstm.study.experiment import train_run

    cfg = tiny_model1_run_config(tiny_data_dir, epochs=2)
    run = tmp_path / "half"
    with pytest.raises(Stop):
        train_run(cfg, run, load_dataset(tiny_data_dir, verify=False), evaluate=False, on_epoch=stop_after(1))
    return run


@pytest.fixture
def done_run(tiny_data_dir, tmp_path) -> Path:
    """A finished 1-epoch run evaluated without figures: ``--resume`` only re-evaluates it."""
    from cnnlstm.data import load_dataset
    from cnnlstm.study.experiment import evaluate_run, train_run

    cfg = tiny_model1_run_config(tiny_data_dir, epochs=1)
    run = tmp_path / "done"
    ds = load_dataset(tiny_data_dir, verify=False)
    train_run(cfg, run, ds, evaluate=False)
    evaluate_run(run, ds, figures=False)
    return run


def _scores_of(results: list[dict], comparison: dict, model: str) -> dict:
    """``model``'s values in ``results.csv`` that ``comparison`` (a ``comparisons.csv`` row) compares, by seed
    (by width and seed for a regime study's pooled primary endpoint)."""
    from cnnlstm.reporting.raw import CELL_FIELDS

    pooled = comparison["width"] == "pooled"
    cell = {k: comparison[k] for k in CELL_FIELDS if not (pooled and k == "width")}
    return {(r["width"], r["seed"]) if pooled else r["seed"]: float(r["value"]) for r in results
            if r["model"] == model and r["metric"] == comparison["metric"] and all(r[k] == v for k, v in cell.items())}


def assert_raw_numbers_recompute(folder: Path) -> int:
    """A study folder's ``comparisons.csv`` intervals recompute from its ``results.csv`` (paired t, scipy).

    Returns how many comparisons were recomputed, so a caller can require some.
    """
    from scipy import stats as sps

    from cnnlstm.reporting.raw import read_csv

    results = read_csv(folder / "results.csv")
    checked = 0
    for row in read_csv(folder / "comparisons.csv"):
        a, b = (_scores_of(results, row, model) for model in (row["a"], row["b"]))
        common = sorted(set(a) & set(b))
        assert int(row["n"]) == len(common), row
        diffs = np.array([a[s] - b[s] for s in common]) * 100
        assert float(row["diff"]) == pytest.approx(diffs.mean(), abs=1e-6), row
        if row["low"]:
            ci = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
            assert (float(row["low"]), float(row["high"])) == pytest.approx((ci.low, ci.high), abs=1e-6), row
            checked += 1
    return checked
