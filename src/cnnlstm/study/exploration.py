"""Run-level glue for the ``explore`` and ``embed`` commands: arrays in, files in a folder out.

:func:`run_explore` writes the dataset exploration of the research plan (Section II.B.1) into a
folder: ``stats.json``, the figures, and a t-SNE of the raw pixels with its quality metrics.
:func:`run_embed` embeds the learned features of a trained run (``forward_features`` of its
``best.pt`` on the test set) into that run's folder.

Both t-SNEs use :func:`cnnlstm.measure.embed.tsne_embed`: PCA to 50 dimensions, PCA initialisation and an
early-exaggeration phase of ``K0 = floor((ln n)^2)`` iterations (natural logarithm; 124 at
n = 70,000) unless ``k0`` is given. Both write the same ``embed.json`` layout (see
:func:`embed_record`), so a report can put raw pixels and each model's features side by side.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cnnlstm.data import Dataset, audit, dataset_stats
from cnnlstm.data.splits import sample_indices
from cnnlstm.errors import ConfigError
from cnnlstm.fileio import run_lock, write_json, write_npy, write_npz
from cnnlstm.measure.embed import default_k0, embedding_quality, tsne_embed
from cnnlstm.reporting import figures as plots

log = logging.getLogger(__name__)

MIN_TSNE_POINTS = 5  # fewer points than this give openTSNE nothing to do

K0_RULE = "floor(ln(n)^2), natural logarithm (Cai & Ma 2022, as the research plan sets it)"
# t-SNE iterations after the exaggeration phase (openTSNE's default is 500; the plan fixes PCA
# initialisation and K0, not this). 350 keep the embedding quality of 500 to within 0.003 in about
# 60% of the time: benchmarks/RESULTS.md, "Evaluate, embed, explore".
N_ITER = 350
PCA_DIMS = 50  # dimensions kept by PCA before t-SNE
QUALITY_SAMPLE = 5000  # kNN query points / trustworthiness sample of embedding_quality
SAMPLES_PER_CLASS = 8  # images per class in sample_grid.png
# Below this many points openTSNE's per-iteration work is too small to share: on a busy 2-core
# machine 2 threads took 28 s for 150 points where 1 thread took 2 s (they wait on each other).
SINGLE_THREAD_BELOW = 5000


def check_tsne_settings(*, samples: int | None, perplexity: float, n_jobs: int, k0: int | None = None,
                        zero_skips: bool = False, what: str = "samples") -> None:
    """One-line :class:`~cnnlstm.errors.ConfigError` for t-SNE settings the embedding cannot use.

    The commands and the Python API both call this, so ``cnnlstm.embed(run, samples=-1)`` and
    ``cnnlstm embed RUN --samples -1`` fail with the same sentence.
    """
    if samples is not None and not (samples >= MIN_TSNE_POINTS or (zero_skips and samples == 0)):
        skip = "0 (skip) or " if zero_skips else ""
        raise ConfigError(f"{what} must be {skip}>= {MIN_TSNE_POINTS} (t-SNE needs a few points), got {samples}")
    if not perplexity > 0:
        raise ConfigError(f"perplexity must be > 0, got {perplexity}")
    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError(f"jobs must be -1 (all cores) or >= 1, got {n_jobs}")
    if k0 is not None and k0 < 0:
        raise ConfigError(f"k0 must be >= 0, got {k0}")


def embed_record(*, space: str, n: int, perplexity: float, k0: int | None, seed: int, n_jobs: int,
                 seconds: float, quality: dict, indices: np.ndarray | None, index_space: str) -> dict:
    """The ``embed.json`` content shared by raw-pixel and model-feature embeddings.

    Returns
    -------
    dict
        ``space``, ``n``, ``perplexity`` (asked), ``perplexity_used`` (openTSNE's clip to
        ``(n-1)/3``), ``k0`` (used), ``k0_default`` (``floor((ln n)^2)``), ``k0_rule``
        (``"default: ..."`` or ``"set by the user"``), the other openTSNE settings, ``seed``,
        ``n_jobs``, ``seconds``, ``quality`` (:func:`cnnlstm.measure.embed.embedding_quality`),
        ``index_space`` and ``indices`` (None = every point of ``index_space`` in order).
    """
    k0_default = default_k0(n)
    return {
        "space": space, "n": int(n), "perplexity": float(perplexity),
        "perplexity_used": min(float(perplexity), (n - 1) / 3.0),
        "k0": int(k0_default if k0 is None else k0), "k0_default": k0_default,
        "k0_rule": f"default: {K0_RULE}" if k0 is None else "set by the user (--k0)",
        "n_iter": N_ITER, "early_exaggeration": 12, "learning_rate": "auto (n / exaggeration)",
        "initialization": "pca", "pca_dims": PCA_DIMS, "seed": int(seed),
        "n_jobs": int(resolve_jobs(n_jobs, n)),
        "seconds": float(seconds), "quality": quality, "index_space": index_space,
        "indices": None if indices is None else [int(i) for i in indices],
    }


def resolve_jobs(n_jobs: int, n: int) -> int:
    """openTSNE threads: ``-1`` means all cores, except 1 thread for fewer than 5,000 points."""
    if n_jobs == -1 and n < SINGLE_THREAD_BELOW:
        return 1
    return n_jobs


def embed_points(x: np.ndarray, labels: np.ndarray, *, perplexity: float, k0: int | None, seed: int,
                 n_jobs: int) -> tuple[np.ndarray, dict, float]:
    """t-SNE of ``x`` and its quality against ``x`` (``n_jobs`` as :func:`resolve_jobs` reads it).

    Returns
    -------
    embedding : np.ndarray
        ``(N, 2)`` float32.
    quality : dict
        :func:`cnnlstm.measure.embed.embedding_quality` (kNN k = 1/10 in ``x`` and in the embedding,
        trustworthiness, Spearman of pairwise distances).
    seconds : float
        Time of the t-SNE alone.
    """
    t0 = time.perf_counter()
    emb = tsne_embed(x, perplexity=perplexity, k0=k0, n_iter=N_ITER, pca_dims=PCA_DIMS, seed=seed,
                     n_jobs=resolve_jobs(n_jobs, len(x)))
    seconds = time.perf_counter() - t0
    quality = embedding_quality(x, emb, labels, sample=QUALITY_SAMPLE, seed=seed)
    return emb.astype(np.float32), quality, seconds


def quality_line(record: dict) -> str:
    """``n=..., perplexity ..., K0 ...`` plus the embedding-quality numbers, for figure titles."""
    q = plots.format_quality(record["quality"])
    return f"n={record['n']:,}, perplexity {record['perplexity_used']:g}, K0={record['k0']}" + (
        f"\n{q}" if q else "")


# --------------------------------------------------------------------------- explore


def write_explore_figures(ds: Dataset, fig_dir: Path, images: np.ndarray, labels: np.ndarray,
                          seed: int) -> None:
    """The plan's exploratory figures: class balance, box plots, samples and mean images.

    ``images``/``labels`` are train and test together (the plan's box plots use all 70,000).
    """
    n_classes = ds.num_classes
    plots.plot_class_distribution(dataset_stats.class_counts(ds.train_labels, n_classes),
                                  dataset_stats.class_counts(ds.test_labels, n_classes), ds.classes,
                                  fig_dir / "class_distribution.png")
    means, variances = dataset_stats.per_image_stats(images)
    n = f"{len(labels):,} images"
    plots.plot_boxplots(means, labels, ds.classes, fig_dir / "boxplot_means.png",
                        f"Per-image pixel mean by class ({n})", "mean pixel value (0-1)")
    plots.plot_boxplots(variances, labels, ds.classes, fig_dir / "boxplot_variances.png",
                        f"Per-image pixel variance by class ({n})", "pixel variance")
    pick = dataset_stats.sample_indices_per_class(ds.train_labels, SAMPLES_PER_CLASS, seed)
    plots.plot_sample_grid(ds.train_images[pick], ds.train_labels[pick], ds.classes,
                           fig_dir / "sample_grid.png", per_class=SAMPLES_PER_CLASS)
    plots.plot_mean_images(dataset_stats.class_mean_images(images, labels, n_classes), ds.classes,
                           fig_dir / "mean_images.png")


def write_audit_figure(ds: Dataset, record: dict, path: Path, limit: int = 24) -> Path:
    """``duplicates.png``: the closest duplicate pairs the audit found (train/test overlaps first)."""
    images = {"train": ds.train_images, "test": ds.test_images}
    pairs = []
    for p in audit.pair_examples(record, limit):
        la = ds.classes[int((ds.train_labels if p["split_a"] == "train" else ds.test_labels)[p["i"]])]
        lb = ds.classes[int((ds.train_labels if p["split_b"] == "train" else ds.test_labels)[p["j"]])]
        label = la if la == lb else f"{la} / {lb}"
        what = "identical" if p["distance"] == 0 else f"d={p['distance']:.2f}"
        pairs.append((images[p["split_a"]][p["i"]], images[p["split_b"]][p["j"]],
                      f"{p['split_a']} {p['i']} / {p['split_b']} {p['j']}\n{what}, {label}"))
    c = record["counts"]
    title = (f"Duplicates (exact, or L2 <= {record['threshold']:g} on [0, 1] pixels): "
             f"{c['exact_train'] + c['near_train']} train pairs, {c['exact_test'] + c['near_test']} test pairs, "
             f"{c['exact_train_test'] + c['near_train_test']} train/test pairs ({c['test_overlapping_train']} test "
             f"images); {len(pairs)} closest shown")
    return plots.plot_image_pairs(pairs, path, title=title)


def raw_tsne(ds: Dataset, out_dir: Path, images: np.ndarray, labels: np.ndarray, *,
             tsne_samples: int | None, seed: int, n_jobs: int, k0: int | None,
             perplexity: float) -> dict:
    """t-SNE of raw pixels (train then test) into ``embedding.npy``, ``embed.json`` and ``tsne_raw.png``."""
    idx = sample_indices(len(labels), tsne_samples, seed)
    sel = slice(None) if idx is None else idx
    # (N, H*W) float32 in [0, 1]; ~220 MB for all 70,000 images
    x = images[sel].reshape(len(images[sel]), -1).astype(np.float32) / 255.0
    y = labels[sel]
    emb, quality, seconds = embed_points(x, y, perplexity=perplexity, k0=k0, seed=seed, n_jobs=n_jobs)
    record = embed_record(space="raw pixels", n=len(y), perplexity=perplexity, k0=k0, seed=seed,
                          n_jobs=n_jobs, seconds=seconds, quality=quality, indices=idx,
                          index_space="train+test (train images first, then test)")
    write_npy(out_dir / "embedding.npy", emb)
    plots.plot_embedding(emb, y, ds.classes, out_dir / "figures" / "tsne_raw.png",
                         f"t-SNE of raw pixels (PCA init), {quality_line(record)}")
    write_json(out_dir / "embed.json", record)
    return record


def run_explore(ds: Dataset, out_dir: str | Path, *, tsne_samples: int | None = None, seed: int = 0,
                n_jobs: int = -1, k0: int | None = None, perplexity: float = 30.0) -> dict:
    """Explore a dataset into ``out_dir``: statistics, figures and a raw-pixel t-SNE.

    Parameters
    ----------
    ds : Dataset
    out_dir : path
        Created if needed. Receives ``stats.json`` (written last, so its presence means the
        folder is complete), ``figures/{class_distribution, boxplot_means, boxplot_variances,
        sample_grid, mean_images, duplicates, tsne_raw}.png`` and, with a t-SNE,
        ``embedding.npy`` (float32 ``(n, 2)``) and ``embed.json`` (see :func:`embed_record`).
    tsne_samples : int or None, default None
        Images embedded, a seeded random subset of train+test; None embeds all of them (the
        plan's Fig. 4 used all 70,000); 0 skips the t-SNE.
    seed : int, default 0
        Seeds the sample images, the t-SNE subset, PCA, openTSNE and the quality sample.
    n_jobs : int, default -1
        openTSNE threads (-1 = all cores, or 1 below 5,000 points; see :func:`resolve_jobs`).
    k0 : int, optional
        Early-exaggeration iterations; default ``floor((ln n)^2)``.
    perplexity : float, default 30

    Returns
    -------
    dict
        The ``stats.json`` content: :func:`cnnlstm.data.dataset_stats.dataset_stats` plus ``dataset``
        (``source``, ``verified``), ``audit`` (exact and near duplicates within and across the
        splits, :func:`cnnlstm.data.audit.audit_dataset`) and ``embedding`` (the ``embed.json``
        record, or None).
    """
    check_tsne_settings(samples=tsne_samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0, zero_skips=True,
                        what="tsne_samples")
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    stats = dataset_stats.dataset_stats(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                                  ds.classes)
    stats["dataset"] = {"source": ds.source, "verified": ds.verified}
    images = np.concatenate([ds.train_images, ds.test_images])  # (N, H, W) uint8, train first
    labels = np.concatenate([ds.train_labels, ds.test_labels]).astype(np.int64)
    write_explore_figures(ds, out_dir / "figures", images, labels, seed)
    stats["audit"] = audit.audit_dataset(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                                         seed=seed)
    write_audit_figure(ds, stats["audit"], out_dir / "figures" / "duplicates.png")
    stats["embedding"] = None
    if tsne_samples != 0:
        stats["embedding"] = raw_tsne(ds, out_dir, images, labels, tsne_samples=tsne_samples, seed=seed,
                                      n_jobs=n_jobs, k0=k0, perplexity=perplexity)
    write_json(out_dir / "stats.json", stats)
    log.info("exploration written to %s", out_dir)
    return stats


# --------------------------------------------------------------------------- embed a run


def add_features_to_predictions(path: Path, labels: np.ndarray, features: np.ndarray) -> bool:
    """Add ``features`` (float16) to an existing ``predictions.npz``, rewritten atomically.

    Returns False (and changes nothing) when the file is absent or its labels are not these.
    """
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if "labels" in arrays and not np.array_equal(arrays["labels"], labels):
        log.warning("%s holds other test labels than the embedded ones; features not added", path)
        return False
    arrays["features"] = features.astype(np.float16)
    write_npz(path, **arrays)
    return True


def run_embed(run_dir: str | Path, ds: Dataset, *, samples: int | None = None, perplexity: float = 30.0,
              k0: int | None = None, seed: int = 0, device: str | None = None, n_jobs: int = -1) -> dict:
    """t-SNE of a trained run's features on the test set, into the run folder.

    Features are ``forward_features`` of the run's ``best.pt`` on the run's test images (the
    first ``limit_test`` when the run set one), via :func:`cnnlstm.measure.inference.predict_probs`.

    Parameters
    ----------
    run_dir : path
        A finished run folder (``config.json`` and ``best.pt``).
    ds : Dataset
        The dataset the run was trained on.
    samples : int or None, default None
        Test images embedded (seeded random subset); None embeds all of them.
    perplexity : float, default 30
    k0 : int, optional
        Early-exaggeration iterations; default ``floor((ln n)^2)``.
    seed : int, default 0
        Same seed, data and ``n_jobs`` -> identical embedding.
    device : str, optional
        Inference device; default the run's ``device``.
    n_jobs : int, default -1
        openTSNE threads (-1 = all cores, or 1 below 5,000 points; see :func:`resolve_jobs`).

    Returns
    -------
    dict
        The ``embed.json`` record (:func:`embed_record`). Also writes ``embedding.npy``
        (float32 ``(n, 2)``), ``figures/tsne.png`` and, if ``predictions.npz`` exists, adds
        ``features`` (float16, every test image) to it.
    """
    from cnnlstm.measure.inference import predict_probs
    from cnnlstm.study.prelude import open_run

    check_tsne_settings(samples=samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0)
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        run = open_run(run_dir, ds, device=device)
        cfg, labels = run.config, run.test_labels
        _, feats = predict_probs(run.model, run.test_tensor(),
                                 batch_size=cfg.eval_batch_size, return_features=True)  # (N, F)
        idx = sample_indices(run.n_test, samples, seed)
        sel = slice(None) if idx is None else idx
        emb, quality, seconds = embed_points(feats[sel], labels[sel], perplexity=perplexity, k0=k0,
                                             seed=seed, n_jobs=n_jobs)
        record = embed_record(space=f"{cfg.model} features (forward_features of best.pt)", n=len(emb),
                              perplexity=perplexity, k0=k0, seed=seed, n_jobs=n_jobs, seconds=seconds,
                              quality=quality, indices=idx, index_space="test")
        record.update(model=cfg.model, feature_dim=int(feats.shape[1]))
        write_npy(run_dir / "embedding.npy", emb)
        plots.plot_embedding(emb, labels[sel], ds.classes, run_dir / "figures" / "tsne.png",
                             f"t-SNE of {cfg.model} features (PCA init), {quality_line(record)}")
        record["features_in_predictions"] = add_features_to_predictions(
            run_dir / "predictions.npz", labels, feats)
        write_json(run_dir / "embed.json", record)
    log.info("embedded %d test images of %s in %.1f s", len(emb), run_dir, seconds)
    return record
