"""Features -> t-SNE embedding (openTSNE) -> embedding-quality metrics.

The research plan uses t-SNE with PCA initialisation and an early-exaggeration phase of
``K0 = floor((log n)^2)`` iterations (Cai & Ma 2022), with the **natural** logarithm: 124
iterations at n = 70,000 (log2 would give 259). ``tsne_embed(..., k0=...)`` overrides it.

Because a t-SNE picture alone is easy to over-read, :func:`embedding_quality` scores it with
the measures of Gove et al. (2022): label kNN accuracy (k = 1, 10), trustworthiness and the
Spearman correlation of pairwise distances.
"""

from __future__ import annotations

import inspect
import logging
import math
import time

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

log = logging.getLogger(__name__)

MIN_POINTS = 5  # fewer points than this cannot be embedded meaningfully


def default_k0(n: int) -> int:
    """Length of the early-exaggeration phase, ``floor((ln n)^2)`` (natural log).

    Parameters
    ----------
    n : int
        Number of points embedded (>= 1).

    Returns
    -------
    int
        e.g. 124 for n = 70,000, 84 for n = 10,000, 0 for n = 1.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return int(math.floor(math.log(n) ** 2))


def _as_float(x) -> np.ndarray:
    """The array as floats without copying float32/float64 input (pixels may be 70,000 x 784)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _pca_reduce(x: np.ndarray, pca_dims: int | None, seed: int) -> np.ndarray:
    """Seeded randomized PCA to ``pca_dims`` when the data have more dimensions than that."""
    if pca_dims is None or x.shape[1] <= pca_dims:
        return x
    n_comp = min(pca_dims, x.shape[0])
    log.info("PCA %d -> %d dims on %d points", x.shape[1], n_comp, x.shape[0])
    pca = PCA(n_components=n_comp, svd_solver="randomized", random_state=seed)
    return pca.fit_transform(x)


def _iter_keyword() -> str:
    """openTSNE 1.0.x calls the optimisation length ``n_iter``; accept a ``max_iter`` rename."""
    from openTSNE import TSNE

    params = inspect.signature(TSNE.__init__).parameters
    return "n_iter" if "n_iter" in params else "max_iter"


def tsne_embed(
    x: np.ndarray,
    *,
    perplexity: float = 30.0,
    k0: int | None = None,
    n_iter: int = 500,
    pca_dims: int | None = 50,
    seed: int = 0,
    n_jobs: int = 1,
) -> np.ndarray:
    """Embed points in 2-D with openTSNE, PCA-initialised, seeded.

    Steps: seeded randomized PCA to ``pca_dims`` when ``D > pca_dims``; then
    ``openTSNE.TSNE(perplexity, learning_rate="auto", early_exaggeration_iter=k0,
    early_exaggeration=12, n_iter, initialization="pca", n_jobs, random_state=seed)``.
    openTSNE runs ``k0`` exaggerated iterations followed by ``n_iter`` normal ones.

    Parameters
    ----------
    x : np.ndarray
        ``(N, D)`` points (image pixels or model features), N >= 5.
    perplexity : float, default 30
        Clipped to ``(N - 1) / 3`` for small N (openTSNE's limit).
    k0 : int, optional
        Early-exaggeration iterations; default :func:`default_k0` ``(N)`` = floor((ln N)^2).
    n_iter : int, default 500
        Iterations after the exaggeration phase (openTSNE's default; the commands pass
        :data:`cnnlstm.study.exploration.N_ITER`, 350, measured to give the same quality faster).
    pca_dims : int or None, default 50
        PCA dimensions before t-SNE; None skips PCA.
    seed : int, default 0
        Seeds PCA, openTSNE's initialisation and its neighbour search: same seed, same input,
        same ``n_jobs`` -> identical embedding.
    n_jobs : int, default 1
        Threads for openTSNE.

    Returns
    -------
    np.ndarray
        ``(N, 2)`` float64 embedding.
    """
    from openTSNE import TSNE  # heavy import (numba), only when embedding

    x = _as_float(x)
    if x.ndim != 2 or x.shape[0] < MIN_POINTS:
        raise ValueError(f"x must be (N, D) with N >= {MIN_POINTS}, got shape {x.shape}")
    n = x.shape[0]
    k0 = default_k0(n) if k0 is None else int(k0)
    perp = min(float(perplexity), (n - 1) / 3.0)
    if perp < perplexity:
        log.info("perplexity %.1f clipped to %.2f for %d points", perplexity, perp, n)
    x = np.ascontiguousarray(_pca_reduce(x, pca_dims, seed), dtype=np.float64)
    tsne = TSNE(
        n_components=2, perplexity=perp, learning_rate="auto", early_exaggeration_iter=k0,
        early_exaggeration=12, initialization="pca", n_jobs=n_jobs, random_state=seed,
        verbose=False, **{_iter_keyword(): int(n_iter)},
    )
    t0 = time.perf_counter()
    log.info("t-SNE on %d points x %d dims (perplexity %.1f, K0 %d, %d iterations)",
             n, x.shape[1], perp, k0, n_iter)
    emb = np.asarray(tsne.fit(x), dtype=np.float64)
    log.info("t-SNE done in %.1f s", time.perf_counter() - t0)
    return emb


def _sample_indices(n: int, sample: int | None, rng: np.random.Generator) -> np.ndarray:
    """All of ``range(n)`` when ``sample`` is None or >= n, else a seeded random subset (sorted)."""
    if sample is None or sample >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=sample, replace=False))


def _leave_one_out_neighbours(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(len(queries), k)`` of each query's k nearest points in ``x``, self excluded."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    idx = nn.kneighbors(x[queries], return_distance=False)  # (Q, k+1), nearest first
    keep = idx != queries[:, None]
    keep[keep.all(axis=1), -1] = False  # self not returned (duplicates): drop the farthest
    return idx[keep].reshape(len(queries), k)


def knn_accuracy(
    x: np.ndarray, labels, ks=(1, 10), *, sample: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Leave-one-out label kNN accuracy in the space ``x`` (any dimension).

    Each query point is classified by majority vote of its k nearest *other* points among
    all N points; ties go to the class whose tied neighbours are nearer.

    Parameters
    ----------
    x : np.ndarray
        ``(N, D)`` points: a 2-D embedding or the original feature space.
    labels : array-like of int, shape (N,)
    ks : sequence of int, default (1, 10)
    sample : int, optional
        Number of query points (seeded random subset); None uses all N as queries.
    seed : int, default 0

    Returns
    -------
    dict
        ``{"knn1": float, "knn10": float}`` (one ``knn<k>`` key per k).
    """
    x = _as_float(x)
    labels = np.asarray(labels).astype(np.int64).ravel()
    k_max = max(ks)
    if x.shape[0] != labels.shape[0] or x.shape[0] <= k_max:
        raise ValueError(f"need N > {k_max} points with one label each, got {x.shape}, {labels.shape}")
    queries = _sample_indices(x.shape[0], sample, np.random.default_rng(seed))
    nbr_labels = labels[_leave_one_out_neighbours(x, queries, k_max)]  # (Q, k_max)
    n_classes = int(labels.max()) + 1
    out = {}
    for k in ks:
        onehot = nbr_labels[:, :k, None] == np.arange(n_classes)  # (Q, k, C)
        nearness = (k - np.arange(k)) / (k * k * 10.0)  # < 1 in total: only breaks ties
        scores = onehot.sum(axis=1) + (onehot * nearness[None, :, None]).sum(axis=1)
        out[f"knn{k}"] = float(np.mean(scores.argmax(axis=1) == labels[queries]))
    return out


def _spearman_of_distances(x_high: np.ndarray, x_low: np.ndarray) -> float | None:
    """Spearman rank correlation between the two spaces' pairwise distances."""
    if x_high.shape[0] < 3:
        return None
    return float(spearmanr(pdist(x_high), pdist(x_low)).statistic)


def embedding_quality(
    features: np.ndarray,
    embedding: np.ndarray | None,
    labels,
    *,
    sample: int | None = 5000,
    spearman_sample: int = 1000,
    n_neighbors: int = 10,
    seed: int = 0,
) -> dict:
    """Score an embedding against the space it came from, and that space itself.

    Two blocks, computed on the same seeded sample of query points so they compare fairly:

    - ``"features"``: kNN accuracy (k = 1, 10, leave-one-out, see :func:`knn_accuracy`) in the
      original space ``features`` — what a label-aware reader could get before embedding.
    - ``"embedding"``: the same kNN accuracies in ``embedding``, plus ``trustworthiness``
      (:func:`sklearn.manifold.trustworthiness`, ``n_neighbors``, between ``features`` and
      ``embedding`` on the sample) and ``spearman`` (Spearman correlation of the pairwise
      distances in both spaces, on a seeded subset of ``spearman_sample`` points of the sample).
      Trustworthiness and Spearman compare two spaces, so the features block has none.

    Parameters
    ----------
    features : np.ndarray
        ``(N, D)`` original space (pixels or model features) the embedding was made from.
    embedding : np.ndarray or None
        ``(N, d)`` embedding (usually d = 2); None computes the ``"features"`` block only.
    labels : array-like of int, shape (N,)
    sample : int or None, default 5000
        At most this many seeded random points serve as kNN queries (against all N points)
        and for trustworthiness; None uses every point (trustworthiness is O(N^2) memory).
    spearman_sample : int, default 1000
        Points for the pairwise-distance correlation (N^2 / 2 pairs).
    n_neighbors : int, default 10
        Neighbourhood size of trustworthiness (reduced for very small samples).
    seed : int, default 0

    Returns
    -------
    dict
        ``{"features": {"knn1", "knn10"}, "embedding": {"knn1", "knn10", "trustworthiness",
        "spearman"}, "n": N, "n_sample": m, "n_spearman": s}`` of plain floats/ints
        (``"embedding"`` absent when ``embedding`` is None; a metric that the sample is too
        small for is None).
    """
    features = _as_float(features)
    n = features.shape[0]
    idx = _sample_indices(n, sample, np.random.default_rng(seed))
    out: dict = {"features": knn_accuracy(features, labels, sample=sample, seed=seed),
                 "n": int(n), "n_sample": int(len(idx))}
    if embedding is None:
        return out
    embedding = _as_float(embedding)
    if embedding.shape[0] != n:
        raise ValueError(f"embedding has {embedding.shape[0]} points, features {n}")
    block = knn_accuracy(embedding, labels, sample=sample, seed=seed)
    k_tw = min(n_neighbors, (len(idx) - 1) // 2)
    block["trustworthiness"] = (
        float(trustworthiness(features[idx], embedding[idx], n_neighbors=k_tw)) if k_tw >= 1 else None
    )
    sp = idx[np.random.default_rng(seed + 1).permutation(len(idx))[:spearman_sample]]
    block["spearman"] = _spearman_of_distances(features[sp], embedding[sp])
    out["embedding"] = block
    out["n_spearman"] = int(len(sp))
    return out
