"""The occlusion driver: a finished run's accuracy under test-time erasing and translation.

The perturbations are :mod:`cnnlstm.data.occlusion`'s (the same images for every model at one
seed); the accuracy is :func:`cnnlstm.measure.robustness.evaluate_perturbed`'s. The regime study
runs it on its largest runs; ``occlusion.json`` in the run folder holds the record.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cnnlstm.data import Dataset
from cnnlstm.fileio import run_lock, write_json

log = logging.getLogger(__name__)

#: The record this driver writes into a run folder (the job's final file).
OCCLUSION_FILE = "occlusion.json"


def run_occlusion(run_dir: str | Path, ds: Dataset, *, erase, shifts, seed: int = 0,
                  device: str | None = None) -> dict:
    """A finished run's accuracy under test-time occlusion and translation, into ``occlusion.json``.

    Parameters
    ----------
    run_dir : path
        A finished run folder.
    ds : Dataset
        The data it trained on (its test set is perturbed).
    erase, shifts : sequence
        Fractions of each image covered by a black square, and translations in pixels; 0 is clean.
    seed : int
        Seeds the perturbations.
    device : str, optional

    Returns
    -------
    dict
        The record: accuracy per level of each kind, the clean accuracy, ``n_images``, ``seconds``.
    """
    from cnnlstm.measure.robustness import evaluate_perturbed
    from cnnlstm.study.prelude import open_run

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    with run_lock(run_dir):
        run = open_run(run_dir, ds, device=device)
        result = evaluate_perturbed(run.model, run.test_images, run.test_labels,
                                    levels={"erase": list(erase), "shift": list(shifts)}, seed=seed, norm=run.norm,
                                    batch_size=run.config.eval_batch_size)
        record = {"model": run.config.model, "n_images": int(run.n_test), "seed": int(seed), **result,
                  "seconds": time.perf_counter() - t0}
        write_json(run_dir / OCCLUSION_FILE, record)
    log.info("%s: clean %.4f, 40%% erased %s (%.1f s)", run_dir, record["clean_accuracy"],
             record["erase"].get("0.4"), record["seconds"])
    return record
