"""The ``explain`` command's driver: where a run's model looks, into ``explain.json`` and two figures.

The attributions themselves are :mod:`cnnlstm.measure.explain`; this module opens the run
(:func:`cnnlstm.study.prelude.open_run`), holds its lock, picks the images and writes the record.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.fileio import read_json, run_lock, write_json
from cnnlstm.measure.explain import (
    IG_STEPS,
    MISTAKES,
    PER_CLASS,
    confident_mistakes,
    explain_images,
    last_conv,
    pick_per_class,
    sequence_grid,
    step_maps,
    step_profile,
)
from cnnlstm.measure.inference import model_device
from cnnlstm.study.prelude import open_run

log = logging.getLogger(__name__)


def _test_predictions(run_dir: Path, model, images: np.ndarray, labels: np.ndarray, batch_size: int, norm):
    """Test probabilities: ``predictions.npz``'s when it matches these labels, else computed."""
    from cnnlstm.data import to_tensor
    from cnnlstm.measure.inference import predict_probs

    path = run_dir / "predictions.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if np.array_equal(npz["labels"], labels) and npz["probs"].shape[0] == len(labels):
                    return npz["probs"].astype(np.float64)
        except (OSError, ValueError, KeyError):
            log.warning("%s is unreadable; predicting the test set again", path)
    return predict_probs(model, to_tensor(images, model_device(model), norm=norm),
                         batch_size=batch_size).astype(np.float64)


def _records(idx, labels, probs, steps, classes) -> list[dict]:
    preds = probs.argmax(1)
    out = []
    for k, i in enumerate(idx):
        out.append({"index": int(i), "label": int(labels[i]), "label_name": str(classes[labels[i]]),
                    "pred": int(preds[i]), "pred_name": str(classes[preds[i]]),
                    "confidence": float(probs[i].max()),
                    "steps": None if steps is None else [round(float(v), 5) for v in steps[k]]})
    return out


def run_explain(run_dir: str | Path, ds: Dataset, *, per_class: int = PER_CLASS, mistakes: int = MISTAKES,
                seed: int = 0, device: str | None = None, n_steps: int = IG_STEPS) -> Path:
    """Explain a run's ``best.pt`` on a few test images into ``explain.json`` and two figures.

    ``figures/explain.png`` shows ``per_class`` seeded random test images of every class;
    ``figures/explain_mistakes.png`` the worst class's (lowest F1; ``metrics.json``'s
    ``worst_class`` when present) most confident mistakes. Each image gets its Grad-CAM and, for
    a model with an LSTM, its step attribution, both for the predicted class. Cost: a few
    seconds on 2 CPU cores (one test-set prediction unless ``predictions.npz`` matches, and
    ``n_steps`` forward and backward passes per explained image).

    Parameters
    ----------
    run_dir : path
        A finished run folder (``config.json`` and ``best.pt``).
    ds : Dataset
    per_class : int, default 3
    mistakes : int, default 8
    seed : int, default 0
        Seeds the choice of images.
    device : str, optional
        Default: the run's ``device``.
    n_steps : int, default 32
        Integrated-gradients steps.

    Returns
    -------
    Path
        ``run_dir/figures/explain.png``. ``explain.json`` holds ``model``, ``grad_cam`` (layer,
        method), ``steps`` (method, ``seq_axis``, sequence length, or ``absent`` with the
        reason), ``target``, ``per_class`` and ``mistakes`` (``index`` into the test set,
        ``label``, ``pred``, ``confidence``, ``steps`` scores), ``worst_class``,
        ``step_profile`` (:func:`step_profile` over the per-class images), ``figures``, ``seconds``.
    """
    from cnnlstm.data import to_tensor
    from cnnlstm.data.splits import black_image
    from cnnlstm.measure.metrics import compute_metrics
    from cnnlstm.reporting import figures as plots

    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    if mistakes < 0:
        raise ConfigError(f"mistakes must be >= 0, got {mistakes}")
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        run = open_run(run_dir, ds, device=device)
        cfg, dev, model = run.config, run.device, run.model
        images, labels = run.test_images, run.test_labels
        size = images.shape[1]
        probs = _test_predictions(run_dir, model, images, labels, cfg.eval_batch_size, run.norm)
        worst = None
        if (run_dir / "metrics.json").exists():
            worst = read_json(run_dir / "metrics.json").get("worst_class")
        if worst is None:
            worst = compute_metrics(labels, probs, ds.classes)["worst_class"]
        chosen, k = pick_per_class(labels, per_class, seed)
        wrong = confident_mistakes(labels, probs, int(worst), mistakes)
        both = np.concatenate([chosen, wrong]).astype(np.int64)
        target = torch.as_tensor(probs[both].argmax(1), dtype=torch.int64, device=dev)
        heat, steps = explain_images(model, to_tensor(images[both], dev, norm=run.norm), target, n_steps=n_steps,
                                     black=black_image(run.norm, dev))
        grid = sequence_grid(model, size)
        seq_axis = getattr(model, "seq_axis", None)
        maps = None if steps is None else step_maps(steps, seq_axis, grid, size)
        layer_name, layer = last_conv(model)
        steps_info = ({"method": f"integrated gradients (captum LayerIntegratedGradients, {n_steps} steps, "
                                 "black-image baseline) on the LSTM's input sequence, summed over each step's "
                                 "features; signed (positive supports the explained class)",
                       "seq_axis": seq_axis, "n_steps": int(steps.shape[1]), "grid": list(grid)}
                      if steps is not None else
                      {"absent": f"{cfg.model} has no LSTM, so there are no sequence steps to attribute"})
        n_pc = len(chosen)
        record = {
            "model": cfg.model, "run": str(run_dir), "checkpoint": "best", "target": "the predicted class",
            "grad_cam": {"layer": layer_name, "layer_repr": repr(layer),
                         "method": "captum LayerGradCam on the last Conv2d's output, rectified, bilinearly "
                                   "upsampled, scaled to max 1 per image"},
            "steps": steps_info, "seed": int(seed), "worst_class": int(worst),
            "worst_class_name": str(ds.classes[int(worst)]),
            "per_class": _records(chosen, labels, probs, None if steps is None else steps[:n_pc], ds.classes),
            "mistakes": _records(wrong, labels, probs, None if steps is None else steps[n_pc:], ds.classes),
            "step_profile": step_profile(None if steps is None else steps[:n_pc], labels[chosen], ds.classes),
            "figures": ["figures/explain.png", "figures/explain_mistakes.png"],
        }
        fig_dir = run_dir / "figures"
        preds = probs.argmax(1)

        def titles(idx):
            return [f"{ds.classes[labels[i]]} -> {ds.classes[preds[i]]}\n{probs[i].max():.2f}"
                    if preds[i] != labels[i] else f"{ds.classes[labels[i]]} {probs[i].max():.2f}" for i in idx]

        note = steps_info.get("absent", "")
        out = plots.plot_explanations(images[chosen], heat[:n_pc], None if maps is None else maps[:n_pc],
                                      titles(chosen), fig_dir / "explain.png",
                                      title=f"{cfg.model}: where it looks ({k} test images per class, "
                                            "explaining the predicted class)",
                                      per_row=k, row_labels=[str(ds.classes[c]) for c in np.unique(labels[chosen])],
                                      steps_note=note)
        plots.plot_explanations(images[wrong], heat[n_pc:], None if maps is None else maps[n_pc:], titles(wrong),
                                fig_dir / "explain_mistakes.png",
                                title=f"{cfg.model}: the most confident mistakes on {ds.classes[int(worst)]} "
                                      f"(worst class), {len(wrong)} shown",
                                per_row=min(4, max(1, len(wrong))), steps_note=note)
        record["seconds"] = time.perf_counter() - t0
        write_json(run_dir / "explain.json", record)
    log.info("explained %d images of %s in %.1f s", len(both), run_dir, record["seconds"])
    return out
