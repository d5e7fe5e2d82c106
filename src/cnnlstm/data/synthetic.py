"""Synthetic tasks as data sources: ``--data debris[:N]`` and ``--data pathfinder[:L]``.

Two tasks on which recurrence inside a convolutional network is reported to help at matched
parameters, generated here so that the same harness (recipes, seeds, controls, statistics) can
show whether it detects that benefit:

- ``debris``, ``debris:N``: Spoerer et al. (2017)'s digit debris, a digit under ``N`` fragments
  of digits (default :data:`~cnnlstm.data.debris.DEFAULT_FRAGMENTS`, 50, the source's default;
  ``N`` from 0 to :data:`MAX_FRAGMENTS`), 32x32 grey, 10 classes; :mod:`cnnlstm.data.debris`.
- ``pathfinder``, ``pathfinder:L``: Pathfinder at 32x32 (Long Range Arena's contour lengths
  ``L`` = 6, 9, 14 dashes; default 14, the hardest, LRA's 'hard' split), 2 classes (are the two
  dots joined by one contour?); :mod:`cnnlstm.data.pathfinder`.

A dataset is named by its canonical spec (``debris:50``, ``pathfinder:14``), so ``debris`` and
``debris:50`` are one dataset and a run records which.

**Sizes.** :data:`DEFAULT_SIZES`: 20,000 training and 5,000 test images, generated in about
8 s (debris) to 20 s (``pathfinder:14``) on one core. The harness takes its validation
split out of the training images, as for every source.

**Seeds.** Each split is drawn from its own seed (:func:`split_seed`: the task, its parameter,
the split and :data:`GENERATOR_VERSION`), so no split's images come from another's random stream.
The labels are a seeded permutation of ``0, 1, ..., K-1`` repeated, so every class has
``n // K`` or ``n // K + 1`` images; the images are generated in chunks of :data:`CHUNK`, each from
its own child seed, and the progress callback is called after each chunk.

**Cache.** The four arrays are cached under the user cache (``$XDG_CACHE_HOME/cnnlstm/synthetic``)
by :func:`cnnlstm.data.sources.write_cache`: keyed by the spec, the sizes, the generator version and
(for debris) the font, each file's SHA-256 in a manifest verified on every load, so a damaged
cache is generated again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnlstm.data.dataset import Dataset, validate_arrays
from cnnlstm.data.sources import cache_root, read_cache, try_write_cache
from cnnlstm.errors import DatasetError

__all__ = ["CHUNK", "DEFAULT_SIZES", "GENERATOR_VERSION", "MAX_FRAGMENTS", "MIN_TRAIN", "SPLIT_SEEDS", "SYNTHETIC_TASKS",
           "SyntheticSpec", "generate_split", "is_synthetic", "load_synthetic", "parse_spec", "split_seed"]

log = logging.getLogger(__name__)

SYNTHETIC_TASKS = ("debris", "pathfinder")
GENERATOR_VERSION = 1  # bump when a generator's images change: the cache key and seeds include it
DEFAULT_SIZES = {"train": 20_000, "test": 5_000}
SPLIT_SEEDS = {"train": 0, "test": 1}  # one per split: disjoint random streams
MAX_FRAGMENTS = 500
MIN_TRAIN = 100  # the validation split takes a fifth of the training images: fewer is no study
CHUNK = 2048  # images per chunk: bounded memory, one progress step, one child seed
_TASK_CODES = {"debris": 1, "pathfinder": 2}  # the task's part of every seed
_DIGITS = tuple(str(d) for d in range(10))
_PATHFINDER_CLASSES = ("disconnected", "connected")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed synthetic data spec.

    Attributes
    ----------
    task : {"debris", "pathfinder"}
    param : int
        Fragments per image (debris) or dashes per target contour (pathfinder).
    n_train : int or None
        Training images, when the spec asks for other than :data:`DEFAULT_SIZES` (``pathfinder:6:100000``).
    """

    task: str
    param: int
    n_train: int | None = None

    @property
    def name(self) -> str:
        """The canonical spec, e.g. ``debris:50`` or ``pathfinder:6:100000``: a run records it as its ``data``."""
        return f"{self.task}:{self.param}" + ("" if self.n_train is None else f":{self.n_train}")

    @property
    def classes(self) -> tuple[str, ...]:
        return _DIGITS if self.task == "debris" else _PATHFINDER_CLASSES

    @property
    def flip_preserves_labels(self) -> bool:
        """A mirrored digit is no digit; a mirrored path joins (or not) the same two dots."""
        return self.task == "pathfinder"


def is_synthetic(spec: str) -> bool:
    """Whether ``spec`` names a synthetic task (``debris``, ``pathfinder``, with or without ``:``)."""
    return str(spec).split(":", 1)[0] in SYNTHETIC_TASKS


def parse_spec(spec: str) -> SyntheticSpec:
    """``debris[:N[:T]]`` or ``pathfinder[:L[:T]]`` -> :class:`SyntheticSpec`.

    ``N`` is the fragment count, ``L`` the contour length, and the optional ``T`` the number of
    training images (default :data:`DEFAULT_SIZES`; ``100000`` or ``100k``): a task the default
    set is too small to learn can be asked for with more data, and the size is part of its name.

    Raises
    ------
    DatasetError
        One line naming the spec and the valid values: ``debris:-1``, ``pathfinder:0``,
        ``pathfinder:x``, ``debris:5:1``.
    """
    from cnnlstm.data.debris import DEFAULT_FRAGMENTS
    from cnnlstm.data.pathfinder import DEFAULT_LENGTH, LENGTHS

    task, sep, rest = str(spec).partition(":")
    if task not in SYNTHETIC_TASKS:
        raise DatasetError(f"--data {spec}: not a synthetic task ({', '.join(SYNTHETIC_TASKS)})")
    arg, size_sep, size = rest.partition(":")
    n_train = _image_count(size) if size_sep else None
    if size_sep and (n_train is None or n_train < MIN_TRAIN):
        example = f"{task}:{DEFAULT_FRAGMENTS if task == 'debris' else DEFAULT_LENGTH}"
        raise DatasetError(f"--data {spec}: the training-image count T must be a whole number of at least "
                           f"{MIN_TRAIN} (e.g. {example}:100000 or {example}:100k)")
    if task == "debris":
        value = _whole_number(arg) if sep else DEFAULT_FRAGMENTS
        if value is None or not 0 <= value <= MAX_FRAGMENTS:
            raise DatasetError(f"--data {spec}: the fragment count must be a whole number from 0 to "
                               f"{MAX_FRAGMENTS} (debris:N; default {DEFAULT_FRAGMENTS})")
        return SyntheticSpec(task, value, n_train)
    value = _whole_number(arg) if sep else DEFAULT_LENGTH
    if value not in LENGTHS:
        raise DatasetError(f"--data {spec}: the contour length must be one of "
                           f"{', '.join(map(str, LENGTHS))} dashes (pathfinder:L; default {DEFAULT_LENGTH})")
    return SyntheticSpec(task, value, n_train)


def _whole_number(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else None


def _image_count(text: str) -> int | None:
    """``100000`` or ``100k`` -> 100000; anything else None."""
    match = re.fullmatch(r"([0-9]+)(k?)", text)
    return None if match is None else int(match[1]) * (1000 if match[2] else 1)


def split_seed(spec: SyntheticSpec, split: str) -> tuple[int, ...]:
    """The entropy of ``split``'s :class:`numpy.random.SeedSequence`: task, parameter, split, version.

    The splits differ in :data:`SPLIT_SEEDS`, so their streams are independent.
    """
    return _TASK_CODES[spec.task], spec.param, SPLIT_SEEDS[split], GENERATOR_VERSION


def _render(spec: SyntheticSpec, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if spec.task == "debris":
        from cnnlstm.data.debris import render_debris

        return render_debris(labels, spec.param, rng)[0]
    from cnnlstm.data.pathfinder import render_pathfinder

    return render_pathfinder(labels, spec.param, rng)[0]


def generate_split(spec: SyntheticSpec, split: str, n: int, *,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(n, 32, 32)`` uint8 and labels ``(n,)`` int64 of one split, from its own seed.

    Parameters
    ----------
    spec : SyntheticSpec
    split : {"train", "test"}
    n : int
        Images to generate.
    progress : callable, optional
        ``progress(f"{spec.name} {split}", done, n)`` after each chunk of :data:`CHUNK` images.
    """
    if split not in SPLIT_SEEDS:
        raise DatasetError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SEEDS)}")
    if n < 1:
        raise DatasetError(f"{spec.name} {split}: needs at least one image, got {n}")
    seq = np.random.SeedSequence(split_seed(spec, split))
    label_seq, chunk_seq = seq.spawn(2)
    k = len(spec.classes)
    labels = np.random.default_rng(label_seq).permutation(np.arange(n) % k).astype(np.int64)
    starts = range(0, n, CHUNK)
    images = np.empty((n, 32, 32), np.uint8)
    for start, child in zip(starts, chunk_seq.spawn(len(starts))):
        stop = min(start + CHUNK, n)
        images[start:stop] = _render(spec, labels[start:stop], np.random.default_rng(child))
        if progress is not None:
            progress(f"{spec.name} {split}", stop, n)
    return images, labels


def _cache_key(spec: SyntheticSpec, sizes: dict[str, int]) -> str:
    ident = {"spec": spec.name, "sizes": sizes, "version": GENERATOR_VERSION,
             "seeds": {s: list(split_seed(spec, s)) for s in sizes}}
    if spec.task == "debris":
        from cnnlstm.data.debris import font_identity

        ident["font"] = font_identity()
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _source(spec: SyntheticSpec) -> str:
    if spec.task == "debris":
        from cnnlstm.data.debris import font_identity

        return f"generated {spec.name} (generator v{GENERATOR_VERSION}, font {font_identity().split()[0]})"
    return f"generated {spec.name} (generator v{GENERATOR_VERSION})"


def load_synthetic(spec: str, *, n_train: int | None = None, n_test: int | None = None, use_cache: bool = True,
                   progress: Progress | None = None) -> Dataset:
    """Generate (or read from the cache) the dataset a synthetic spec names.

    Parameters
    ----------
    spec : str
        ``debris``, ``debris:N``, ``pathfinder`` or ``pathfinder:L``, each with an optional
        ``:T`` training images (``pathfinder:6:100000``).
    n_train, n_test : int, optional
        Images per split (default: the spec's ``T``, else :data:`DEFAULT_SIZES`, read when called).
    use_cache : bool
        Read and write the generated arrays in the user cache.
    progress : callable, optional
        ``progress(label, done, total)`` after each chunk generated (see :func:`generate_split`).

    Returns
    -------
    Dataset
        Named by the canonical spec (``debris:50``), 32x32 grey, ``verified`` False (no published
        checksum exists), ``split`` saying the splits' seeds.

    Raises
    ------
    DatasetError
        A bad parameter (``debris:-1``, ``pathfinder:0``), a size below 1, or an ``n_train`` that
        contradicts the spec's ``T``.

    Examples
    --------
    >>> ds = load_synthetic("pathfinder:9", n_train=200, n_test=100, use_cache=False)
    >>> ds.name, ds.classes, ds.flip_preserves_labels
    ('pathfinder:9', ('disconnected', 'connected'), True)
    """
    parsed = parse_spec(spec)
    if parsed.n_train is not None:
        if n_train is not None and int(n_train) != parsed.n_train:
            raise DatasetError(f"--data {spec}: names {parsed.n_train} training images, but n_train={n_train} was asked")
        n_train = parsed.n_train
    sizes = {"train": int(DEFAULT_SIZES["train"] if n_train is None else n_train),
             "test": int(DEFAULT_SIZES["test"] if n_test is None else n_test)}
    key = _cache_key(parsed, sizes)
    out = cache_root() / "synthetic" / f"{parsed.task}-{parsed.param}-{key[:16]}"
    cached = read_cache(out, lambda meta: meta.get("key") == key) if use_cache else None
    source = _source(parsed)
    if cached is not None:
        arrays = cached[0]
        source += " (cache)"
        validate_arrays(arrays, source, len(parsed.classes))  # cheap; a cache is never trusted blindly
    else:
        began = time.perf_counter()
        arrays = {}
        for split, n in sizes.items():
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = generate_split(parsed, split, n,
                                                                                  progress=progress)
        log.info("generated %s: %d training and %d test images in %.1f s", parsed.name, sizes["train"],
                 sizes["test"], time.perf_counter() - began)
        validate_arrays(arrays, source, len(parsed.classes))
        if use_cache:
            try_write_cache(out, arrays, {"key": key, "spec": parsed.name, "sizes": sizes})
    seeds = ", ".join(f"{s} {list(split_seed(parsed, s))}" for s in sizes)
    return Dataset(classes=parsed.classes, source=source, verified=False, name=parsed.name,
                   flip_preserves_labels=parsed.flip_preserves_labels,
                   split=f"generated from disjoint seeds ({seeds})", **arrays)
