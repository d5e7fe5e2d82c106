"""Is the benchmark clean? Exact and near duplicates within and across the train and test sets.

Exact duplicates are images with identical bytes (found by hashing). Near duplicates are pairs of
different images whose Euclidean distance on the pixels, in [0, 1] units, is at most
:data:`NEAR_THRESHOLD` = 1.0: a root-mean-square difference of at most 1/28 (about 9 grey levels
of 255) over the 784 pixels of a Fashion-MNIST image. On Fashion-MNIST the distances to the nearest
neighbour are spread thinly up to about 1.1 and rise steeply after it; pairs under 1.0 are visibly
the same photograph, re-cropped or re-encoded, while pairs around 1.5 are different products that
look alike (mostly plain dark trousers).

The search is exact, not approximate: images are projected on their first 50 principal
components (sklearn PCA, fitted on up to 10,000 images), and a KD-tree over the first
:data:`TREE_DIMS` of them collects candidate pairs within the threshold. An orthonormal
projection never increases a distance, so no pair within the threshold is missed; candidates are
then filtered on all 50 components and confirmed on the full pixels. About 10 s of CPU for the
70,000 Fashion-MNIST images.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict

import numpy as np

log = logging.getLogger(__name__)

NEAR_THRESHOLD = 1.0  # L2 distance on [0, 1] pixels of a 28x28 grey image (see the module docstring)
NEAR_RMS = 1.0 / 28.0  # the same as a root-mean-square difference per pixel value: any size or channels
PCA_DIMS = 50  # components kept for the candidate filter
TREE_DIMS = 8  # components the KD-tree indexes (more make the tree slower than the extra pruning)
PCA_FIT_SAMPLES = 10_000  # images the PCA is fitted on (a seeded sample)
QUERY_CHUNK = 10_000  # KD-tree queries per chunk (bounds the candidate lists in memory)
SLACK = 1e-4  # added to the threshold in projected space, for float32 rounding
_OVERLAP_CACHE: dict[tuple, np.ndarray] = {}


def _flat(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
    return images.reshape(len(images), -1)


def near_threshold(images) -> float:
    """The near-duplicate L2 distance for images of this shape: RMS :data:`NEAR_RMS` per value.

    ``1.0`` for a 28x28 greyscale image (:data:`NEAR_THRESHOLD`), so Fashion-MNIST keeps its
    calibrated threshold and other sizes and channel counts get the same per-pixel tolerance.
    """
    values = int(np.prod(np.asarray(images).shape[1:]))
    return 1.0 if values == 784 else float(NEAR_RMS * np.sqrt(values))


def image_digests(images) -> list[bytes]:
    """A BLAKE2b digest (16 bytes) of each image's bytes."""
    flat = np.ascontiguousarray(_flat(images))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def exact_duplicate_groups(images) -> list[list[int]]:
    """Groups (two or more images) of byte-identical images, each sorted, ordered by first index."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, digest in enumerate(image_digests(images)):
        groups[digest].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def exact_cross_pairs(images_a, images_b) -> list[tuple[int, int]]:
    """``(i, j)`` for every image ``a[i]`` byte-identical to ``b[j]``, sorted."""
    in_a: dict[bytes, list[int]] = defaultdict(list)
    for i, digest in enumerate(image_digests(images_a)):
        in_a[digest].append(i)
    pairs = [(i, j) for j, digest in enumerate(image_digests(images_b)) for i in in_a.get(digest, ())]
    return sorted(pairs)


def _projection(x: np.ndarray, seed: int) -> np.ndarray:
    """``(N, k)`` float32 coordinates on the first k <= 50 principal components (orthonormal)."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    fit_idx = np.random.default_rng(seed).choice(n, size=min(n, PCA_FIT_SAMPLES), replace=False)
    k = min(PCA_DIMS, d, len(fit_idx))
    # many images: the eigendecomposition of the d x d covariance (0.4 s for 10,000 Fashion-MNIST
    # images against 1.6 s for a randomized SVD); few images: the SVD of the small data matrix
    solver = "covariance_eigh" if len(fit_idx) >= 4 * d else "full"
    pca = PCA(n_components=k, svd_solver=solver).fit(x[fit_idx])
    return pca.transform(x).astype(np.float32)


def _candidate_pairs(z_ref: np.ndarray, z_query: np.ndarray, radius: float, within: bool):
    """``(ref, query)`` index pairs within ``radius`` on the first TREE_DIMS coordinates."""
    from sklearn.neighbors import KDTree

    dims = min(TREE_DIMS, z_ref.shape[1])
    tree = KDTree(z_ref[:, :dims])
    refs, queries = [], []
    for start in range(0, len(z_query), QUERY_CHUNK):
        hits = tree.query_radius(z_query[start:start + QUERY_CHUNK, :dims], r=radius)
        sizes = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
        q = np.repeat(np.arange(start, start + len(hits)), sizes)
        r = np.concatenate(hits).astype(np.int64) if len(hits) else np.zeros(0, np.int64)
        if within:  # each unordered pair once, no self pairs
            keep = r < q
            q, r = q[keep], r[keep]
        refs.append(r)
        queries.append(q)
    return np.concatenate(refs), np.concatenate(queries)


def _sq_dist(a: np.ndarray, b: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Row-wise squared distances of two equally long (K, D) arrays, in chunks.

    uint8 rows give exact int64 sums; float rows float64 sums.
    """
    exact = a.dtype == np.uint8
    out = np.empty(len(a), dtype=np.int64 if exact else np.float64)
    for s in range(0, len(a), chunk):
        kind = np.int64 if exact else np.float64
        d = a[s:s + chunk].astype(kind) - b[s:s + chunk].astype(kind)
        out[s:s + chunk] = np.einsum("ij,ij->i", d, d)
    return out


def near_duplicate_pairs(images, other=None, *, threshold: float | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of different images at pixel distance ``0 < d <= threshold`` ([0, 1] units).

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` uint8.
    other : np.ndarray, optional
        ``(M, H, W)`` uint8: find pairs across the two sets instead of within ``images``.
    threshold : float, optional
        Default :func:`near_threshold` of the images (1.0 for 28x28 grey).
    seed : int
        Seeds the PCA's fitting sample.

    Returns
    -------
    pairs : np.ndarray
        ``(K, 2)`` int64: ``(i, j)`` with ``i < j`` within ``images``, or ``(i in images, j in
        other)`` across; sorted.
    distances : np.ndarray
        ``(K,)`` float64 pixel distances.
    """
    threshold = near_threshold(images) if threshold is None else threshold
    raw_x = _flat(images)
    raw_y = None if other is None else _flat(other)
    x = raw_x.astype(np.float32) / 255.0
    y = None if other is None else raw_y.astype(np.float32) / 255.0
    both = x if y is None else np.concatenate([x, y])
    if len(both) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    z = _projection(both, seed)
    zx, zy = z[:len(x)], (z if y is None else z[len(x):])
    radius = threshold + SLACK
    i, j = _candidate_pairs(zx, zy, radius, within=y is None)
    keep = _sq_dist(zx[i], zy[j]) <= radius**2  # all 50 components: still never above the truth
    i, j = i[keep], j[keep]
    # exact integer sums on the uint8 pixels, so a pair on the threshold is judged the same every time
    dist = np.sqrt(_sq_dist(raw_x[i], (raw_x if y is None else raw_y)[j])) / 255.0
    keep = (dist > 0) & (dist <= threshold)
    pairs = np.stack([i[keep], j[keep]], axis=1) if keep.any() else np.zeros((0, 2), np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.zeros(0, np.int64)
    return pairs[order].astype(np.int64), dist[keep][order]


def _split_pairs(pairs: np.ndarray, dist: np.ndarray, n_train: int) -> dict[str, list]:
    """Pairs over train+test (train first) -> within train, within test, across (train i, test j)."""
    out: dict[str, list] = {"train": [], "test": [], "train_test": []}
    for (i, j), d in zip(pairs.tolist(), dist.tolist()):
        if j < n_train:
            out["train"].append([i, j, round(d, 4)])
        elif i >= n_train:
            out["test"].append([i - n_train, j - n_train, round(d, 4)])
        else:
            out["train_test"].append([i, j - n_train, round(d, 4)])
    return out


def _label_conflicts(exact: dict, near: dict, train_labels, test_labels) -> list[dict]:
    """Duplicate pairs whose two images carry different labels (one of them is likely mislabelled)."""
    labels = {"train": (train_labels, train_labels), "test": (test_labels, test_labels),
              "train_test": (train_labels, test_labels)}
    out = []
    for kind, (la, lb) in labels.items():
        pairs = [(g[0], m, "exact") for g in exact[kind] for m in g[1:]] if kind != "train_test" else \
            [(i, j, "exact") for i, j in exact[kind]]
        pairs += [(i, j, "near") for i, j, _ in near[kind]]
        for i, j, how in pairs:
            if int(la[i]) != int(lb[j]):
                out.append({"kind": kind, "match": how, "i": int(i), "j": int(j),
                            "labels": [int(la[i]), int(lb[j])]})
    return out


def audit_dataset(train_images, train_labels, test_images, test_labels, *,
                  threshold: float | None = None, seed: int = 0) -> dict:
    """Exact and near duplicates within train, within test and across, as JSON-ready values.

    Parameters
    ----------
    train_images, test_images : np.ndarray
        ``(N, H, W)`` uint8.
    train_labels, test_labels : array-like of int
    threshold : float, optional
        Near-duplicate distance (L2 on [0, 1] pixels); default :func:`near_threshold`.
    seed : int

    Returns
    -------
    dict
        ``threshold``, ``method`` (how each kind is found), ``exact`` (``train`` / ``test``:
        groups of identical indices; ``train_test``: ``[train_i, test_j]`` pairs), ``near``
        (``train`` / ``test`` / ``train_test``: ``[i, j, distance]``, indices within their own
        split), ``label_conflicts`` (duplicate pairs with different labels), ``counts`` (pairs of
        each kind), ``test_overlapping_train`` (sorted test indices with an exact or near
        duplicate in train) and ``seconds``.
    """
    t0 = time.perf_counter()
    n_train = len(train_images)
    exact = {"train": exact_duplicate_groups(train_images), "test": exact_duplicate_groups(test_images),
             "train_test": [list(p) for p in exact_cross_pairs(train_images, test_images)]}
    threshold = near_threshold(train_images) if threshold is None else threshold
    pairs, dist = near_duplicate_pairs(np.concatenate([train_images, test_images]), threshold=threshold,
                                       seed=seed)
    near = _split_pairs(pairs, dist, n_train)
    overlap = sorted({j for _, j in exact["train_test"]} | {j for _, j, _ in near["train_test"]})

    def n_pairs(groups):
        return int(sum(len(g) * (len(g) - 1) // 2 for g in groups))

    counts = {"exact_train": n_pairs(exact["train"]), "exact_test": n_pairs(exact["test"]),
              "exact_train_test": len(exact["train_test"]), "near_train": len(near["train"]),
              "near_test": len(near["test"]), "near_train_test": len(near["train_test"]),
              "test_overlapping_train": len(overlap)}
    conflicts = _label_conflicts(exact, near, np.asarray(train_labels), np.asarray(test_labels))
    counts["label_conflicts"] = len(conflicts)
    seconds = time.perf_counter() - t0
    log.info("audit: %d exact and %d near duplicate pairs, %d test images overlap train (%.1f s)",
             counts["exact_train"] + counts["exact_test"] + counts["exact_train_test"],
             counts["near_train"] + counts["near_test"] + counts["near_train_test"], len(overlap), seconds)
    return {"threshold": float(threshold),
            "method": {"exact": "identical bytes (BLAKE2b digest of each image)",
                       "near": f"0 < L2 distance <= {threshold:g} on pixels in [0, 1] units; candidates from a "
                               f"KD-tree on {TREE_DIMS} of {PCA_DIMS} principal components (a projection never "
                               "increases a distance, so none is missed), confirmed on the full pixels"},
            "exact": exact, "near": near, "label_conflicts": conflicts, "counts": counts,
            "test_overlapping_train": overlap, "seconds": float(seconds)}


def train_test_overlap(train_images, test_images, *, threshold: float | None = None,
                       seed: int = 0) -> np.ndarray:
    """Sorted indices of the test images with an exact or near duplicate in the training set.

    The same set as :func:`audit_dataset`'s ``test_overlapping_train``, found with one cross
    search (about 2 s for Fashion-MNIST). Results are kept for the life of the process, keyed by
    the images' contents, so a study evaluating many runs pays once.

    Returns
    -------
    np.ndarray
        int64 test indices.
    """
    threshold = near_threshold(train_images) if threshold is None else threshold
    key = (hashlib.blake2b(np.ascontiguousarray(train_images).tobytes(), digest_size=16).hexdigest(),
           hashlib.blake2b(np.ascontiguousarray(test_images).tobytes(), digest_size=16).hexdigest(),
           np.asarray(train_images).shape, np.asarray(test_images).shape, float(threshold), int(seed))
    if key not in _OVERLAP_CACHE:
        exact = {j for _, j in exact_cross_pairs(train_images, test_images)}
        pairs, _ = near_duplicate_pairs(train_images, test_images, threshold=threshold, seed=seed)
        _OVERLAP_CACHE[key] = np.array(sorted(exact | set(pairs[:, 1].tolist())), dtype=np.int64)
    return _OVERLAP_CACHE[key].copy()


def pair_examples(audit: dict, limit: int = 24) -> list[dict]:
    """Up to ``limit`` duplicate pairs to show, closest first: cross-split pairs, then test, then train.

    Returns
    -------
    list of dict
        ``{"kind", "split_a", "i", "split_b", "j", "distance"}`` (distance 0 for exact duplicates).
    """
    rows = []
    splits = {"train_test": ("train", "test"), "test": ("test", "test"), "train": ("train", "train")}
    for kind in ("train_test", "test", "train"):
        a, b = splits[kind]
        found = ([(i, j, 0.0) for i, j in audit["exact"][kind]] if kind == "train_test"
                 else [(g[0], m, 0.0) for g in audit["exact"][kind] for m in g[1:]])
        found += [tuple(p) for p in audit["near"][kind]]
        for i, j, d in sorted(found, key=lambda p: p[2]):
            rows.append({"kind": kind, "split_a": a, "i": int(i), "split_b": b, "j": int(j), "distance": float(d)})
    return rows[:limit]
