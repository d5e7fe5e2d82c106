"""Benchmark: the flagship ``cnn_lstm`` on a CUDA GPU, through the same code as ``cnnlstm train``.

1. Training throughput, images/second: the ``fast`` preset's cnn_lstm trained for two epochs
   with fp32, bf16 autocast, and bf16 + channels_last (``--compile`` adds a torch.compile
   variant); the second epoch is timed (the first includes cuDNN autotuning and warm-up).
   "seconds" is the training loop's own per-epoch time from ``history.csv`` (validation excluded).
2. Time to accuracy: the ``fast`` and ``best`` presets trained as shipped; after every epoch the
   epoch-end checkpoint is evaluated on the TEST set -- for this benchmark's report only; presets
   are tuned on the validation split -- and the cumulative training seconds at which test accuracy
   first reaches 92% and 94.5% are printed ("not reached" otherwise), beside the same for the
   validation accuracy of ``history.csv``.

With ``--json`` the results file is rewritten after every part, so a run stopped early (Ctrl-C,
a batch system's wall-time limit) still leaves the parts it finished.

About 2-3 minutes on an H100. Without CUDA it exits with a message;
``--dry-run`` runs every code path on the CPU with synthetic data and tiny sizes instead (the
numbers it prints mean nothing).

    python benchmarks/gpu.py                       # real data from the usual places
    python benchmarks/gpu.py --data-dir /usr/share/datasets/fashion-mnist --json runs/bench-gpu.json
    python benchmarks/gpu.py --dry-run             # CPU smoke test of the benchmark itself
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnnlstm.config import resolve_train_config
from cnnlstm.data import Dataset, load_dataset, to_tensor
from cnnlstm.fileio import atomic_write
from cnnlstm.measure.inference import predict_probs
from cnnlstm.models import create_model
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import train_run

MODEL = "cnn_lstm"
THRESHOLDS = (0.92, 0.945)
VARIANTS = {  # name -> config overrides on top of the fast preset
    "fp32": {"amp": "off", "channels_last": False},
    "bf16": {"amp": "bf16", "channels_last": False},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
}


def synthetic_dataset(n_train: int = 400, n_test: int = 100, seed: int = 0) -> Dataset:
    """A learnable stand-in for --dry-run: class c brightens a band of rows at 2c+4."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.permutation(np.arange(n) % 10)
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4:2 * c + 6, 3:25] = 200
        return images, labels.astype(np.int64)

    (tri, trl), (tei, tel) = make(n_train), make(n_test)
    return Dataset(tri, trl, tei, tel, tuple(f"class {i}" for i in range(10)), "synthetic", False)


def config(preset: str, device: str, dry: bool, **overrides):
    """The preset's config for cnn_lstm on ``device`` (tiny sizes in a dry run)."""
    values = {"device": device, **overrides}
    if dry:
        values.update(verify=False, val_size=80, epochs=min(overrides.get("epochs", 2), 2), threads=2)
    return resolve_train_config(MODEL, preset=preset, overrides=values)


def throughput(ds: Dataset, device: str, root: Path, dry: bool, variants: dict) -> dict[str, float | str]:
    """Images/second of the second training epoch for each variant (an error message if it failed).

    A variant the GPU's software cannot run (e.g. bf16 LSTMs need cuDNN >= 9.13) is reported
    and skipped rather than ending the benchmark.
    """
    out: dict[str, float | str] = {}
    for name, overrides in variants.items():
        cfg = config("fast", device, dry, epochs=2, **overrides)
        try:
            result = train_run(cfg, root / f"speed-{name}", ds, evaluate=False)
        except RuntimeError as exc:
            out[name] = f"failed: {str(exc).splitlines()[0]}"
            print(f"  {name:<28} {out[name]}", flush=True)
            continue
        history = result["state"].history
        n_train = len(ds.train_labels) - min(cfg.val_size, len(ds.train_labels) // 5)
        out[name] = n_train / history[-1]["seconds"]
        print(f"  {name:<28} {out[name]:>10,.0f} images/s  (epoch 2: {history[-1]['seconds']:.2f} s)", flush=True)
    return out


class AccuracyProbe:
    """``on_epoch`` callback: evaluate the epoch-end checkpoint on the test set, log when thresholds fall.

    The eval model is created under ``torch.random.fork_rng`` so that building it does not move
    the global RNG the training's dropout draws from.
    """

    def __init__(self, cfg, ds: Dataset, run_dir: Path, device: torch.device):
        self.cfg, self.run_dir, self.device = cfg, run_dir, device
        self.test_x = to_tensor(ds.test_images, device, norm=ds.norm)
        self.test_y = ds.test_labels
        self.model = None
        self.train_seconds = 0.0
        self.epochs: list[dict] = []
        self.reached: dict[float, dict] = {}  # test accuracy thresholds
        self.reached_val: dict[float, dict] = {}  # validation accuracy thresholds

    def __call__(self, row: dict) -> None:
        self.train_seconds += row["seconds"]
        if self.model is None:
            cuda = [torch.cuda.current_device()] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                self.model = create_model(self.cfg.model, num_classes=10, image_size=28,
                                          **self.cfg.model_args).to(self.device)
        state = load_checkpoint(self.run_dir / "checkpoint.pt", map_location=self.device)["model"]
        self.model.load_state_dict(state)
        probs = predict_probs(self.model, self.test_x, batch_size=self.cfg.eval_batch_size)
        acc = float((probs.argmax(1) == self.test_y).mean())
        self.epochs.append({"epoch": row["epoch"], "train_seconds": self.train_seconds, "test_acc": acc,
                            "val_acc": row["val_acc"]})
        hit = {"epoch": row["epoch"], "train_seconds": self.train_seconds}
        for t in THRESHOLDS:
            if t not in self.reached and acc >= t:
                self.reached[t] = hit
            if t not in self.reached_val and row["val_acc"] >= t:
                self.reached_val[t] = hit
        print(f"    epoch {row['epoch']:>2}: test acc {acc:.4f} (val {row['val_acc']:.4f}) "
              f"after {self.train_seconds:6.1f} s of training", flush=True)


def time_to_accuracy(ds: Dataset, preset: str, device: str, root: Path, dry: bool) -> dict:
    """Train the preset once, probing test accuracy after each epoch."""
    cfg = config(preset, device, dry)
    run_dir = root / f"tta-{preset}"
    probe = AccuracyProbe(cfg, ds, run_dir, torch.device(device if device != "auto" else "cuda"))
    t0 = time.perf_counter()
    train_run(cfg, run_dir, ds, evaluate=False, on_epoch=probe)
    wall = time.perf_counter() - t0
    for t in THRESHOLDS:
        for split, reached in (("test", probe.reached), ("validation", probe.reached_val)):
            hit = reached.get(t)
            text = f"reached after {hit['train_seconds']:.1f} s of training (epoch {hit['epoch']})" if hit \
                else "not reached"
            print(f"  {preset}: {t:.1%} {split} accuracy {text}")
    final = probe.epochs[-1]["test_acc"] if probe.epochs else float("nan")
    print(f"  {preset}: {cfg.epochs} epochs, final test acc {final:.4f}, {probe.train_seconds:.1f} s training, "
          f"{wall:.1f} s wall incl. validation and this benchmark's test probes")
    return {"preset": preset, "epochs": cfg.epochs, "amp": cfg.amp, "batch_size": cfg.batch_size,
            "reached": {str(t): probe.reached.get(t) for t in THRESHOLDS},
            "reached_val": {str(t): probe.reached_val.get(t) for t in THRESHOLDS}, "per_epoch": probe.epochs,
            "train_seconds": probe.train_seconds, "wall_seconds": wall}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: the usual places)")
    ap.add_argument("--presets", nargs="+", default=["fast", "best"], help="presets for time to accuracy")
    ap.add_argument("--skip-speed", action="store_true", help="skip the throughput part")
    ap.add_argument("--compile", action="store_true", help="also time bf16+channels_last with torch.compile")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--keep", metavar="DIR", help="keep the run folders in DIR (default: a temporary folder)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, synthetic data, tiny sizes: check the code paths")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); this benchmark "
              "measures GPU training. Use --dry-run to check its code paths on the CPU.", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    ds = synthetic_dataset() if args.dry_run else load_dataset(args.data_dir, verify=True)
    name = "CPU (dry run: numbers are meaningless)" if args.dry_run else torch.cuda.get_device_name()
    print(f"device: {name}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}; "
          f"{len(ds.train_labels):,} training images", flush=True)
    variants = dict(VARIANTS)
    if args.compile:
        variants["bf16+channels_last+compile"] = {"amp": "bf16", "channels_last": True, "compile": True}
    results: dict = {"device": name, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
                     "dry_run": args.dry_run}
    with tempfile.TemporaryDirectory(prefix="cnnlstm-bench-") as tmp:
        root = Path(args.keep or tmp)
        if not args.skip_speed:
            batch = config("fast", device, args.dry_run).batch_size
            print(f"training throughput, {MODEL}, fast preset (batch {batch}):", flush=True)
            results["throughput"] = throughput(ds, device, root, args.dry_run, variants)
            write_json(args.json, results)
        results["time_to_accuracy"] = []
        for preset in args.presets:
            print(f"time to accuracy, {MODEL}, preset {preset}:", flush=True)
            results["time_to_accuracy"].append(time_to_accuracy(ds, preset, device, root, args.dry_run))
            write_json(args.json, results)
    write_json(args.json, results)
    return 0


def write_json(path: str | None, results: dict) -> None:
    """(Re)write the results so far to ``path`` (nothing when None); a kill never leaves half a file."""
    if path:
        atomic_write(path, (json.dumps(results, indent=2) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
