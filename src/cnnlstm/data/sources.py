"""Fashion-MNIST data layer: IDX reading and validation, sources, checksums, cache, splits.

Where the data comes from, first match wins:

1. ``data_dir`` (the CLI's ``--data-dir``);
2. ``$CNNLSTM_DATA``;
3. the user cache, ``$XDG_CACHE_HOME/cnnlstm/fashion-mnist`` (default ``~/.cache/...``);
4. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package);
5. a download of the upstream files into the user cache (unless ``download=False``).

Checksums are SHA-256 of the *decompressed* IDX bytes, so Debian's re-compressed ``.gz`` files
pass and digit MNIST served by a wrong mirror fails. Verified arrays are cached as ``.npy`` beside
a small JSON manifest holding their own SHA-256, so a second load skips decompression and hashing
of the IDX files, and a damaged cache file is detected and rebuilt, never trusted.

Why one module of this size: reading, validating, finding, verifying and caching are one path
from bytes on disk to a checked array, and most of the length is the validation that turns
every malformed file into a one-line error naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnnlstm.data.idx import find_idx_file, parse_idx, read_file_bytes
from cnnlstm.errors import DatasetError, RunError
from cnnlstm.fileio import atomic_write, sha256_hex

log = logging.getLogger(__name__)

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed IDX bytes (Debian's .gz files differ from upstream's, these do not).
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
UPSTREAM_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}.gz"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

_CACHE_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """The four arrays of an IDX image-classification dataset and where they came from.

    Attributes
    ----------
    train_images, test_images : np.ndarray
        uint8 arrays of shape (N, H, W).
    train_labels, test_labels : np.ndarray
        int64 arrays of shape (N,), values in ``range(len(classes))``.
    classes : tuple of str
        Class names, index = label.
    source : str
        The folder the files were read from (or ``"<folder> (cache)"``).
    verified : bool
        True when every file matched the Fashion-MNIST SHA-256 table.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    verified: bool

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------- IDX reading


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnlstm/fashion-mnist`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlstm" / "fashion-mnist"


def candidate_dirs(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """The folders searched for IDX files, in order, each with a label for messages."""
    if data_dir is not None:
        return [("--data-dir", Path(data_dir))]  # explicit choice: never fall back silently
    found = []
    if os.environ.get("CNNLSTM_DATA"):
        found.append(("$CNNLSTM_DATA", Path(os.environ["CNNLSTM_DATA"])))
    found.append(("cache", user_cache_dir()))
    found.append(("debian", DEBIAN_DIR))
    return found


def has_all_files(folder: Path) -> bool:
    return folder.is_dir() and all(find_idx_file(folder, s) for s in SPLIT_FILES.values())


def read_verified(folder: Path, verify: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Read the four IDX files of ``folder``; check SHA-256 of the decompressed bytes if asked."""
    arrays, all_match = {}, True
    for key, stem in SPLIT_FILES.items():
        path = find_idx_file(folder, stem)
        if path is None:
            raise DatasetError(f"{folder}: missing {stem}(.gz)")
        raw = read_file_bytes(path)
        if verify or all_match:  # keep hashing while it may still prove to be Fashion-MNIST
            match = sha256_hex(raw) == FASHION_SHA256[stem]
            if verify and not match:
                raise DatasetError(
                    f"{path}: SHA-256 does not match Fashion-MNIST's (wrong dataset, e.g. digit MNIST, "
                    "or a damaged file); use --no-verify to load another IDX dataset on purpose"
                )
            all_match = all_match and match
        arrays[key] = parse_idx(raw, name=str(path))
    return arrays, all_match


def class_names_for(folder: Path, verified: bool) -> tuple[str, ...]:
    """Fashion-MNIST's names, else ``classes.txt`` beside the files, else ``class 0`` .. ``class 9``.

    Ten classes is the default for unverified IDX datasets (digit MNIST and KMNIST have ten too);
    a ``classes.txt`` with one name per line sets both the names and the class count.
    """
    names_file = folder / "classes.txt"
    if names_file.is_file():
        names = [ln.strip() for ln in names_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(names) < 2:
            raise DatasetError(f"{names_file}: needs at least 2 class names, one per line")
        return tuple(names)
    if verified:
        return FASHION_CLASSES
    return tuple(f"class {i}" for i in range(len(FASHION_CLASSES)))


def validate_arrays(arrays: dict[str, np.ndarray], source: str, n_classes: int) -> None:
    """Check shapes, dtypes, image/label counts and that labels lie in ``[0, n_classes)``."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3:
            raise DatasetError(f"{source}: {split} images have {images.ndim} dimensions, expected 3 (N, H, W)")
        if labels.ndim != 1:
            raise DatasetError(f"{source}: {split} labels have {labels.ndim} dimensions, expected 1")
        if images.dtype != np.uint8:
            raise DatasetError(f"{source}: {split} images are {images.dtype}, expected uint8")
        if len(images) != len(labels):
            raise DatasetError(f"{source}: {split} has {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DatasetError(f"{source}: {split} split is empty")
        bad = (labels < 0) | (labels >= n_classes)
        if bad.any():
            raise DatasetError(
                f"{source}: {split} label {int(labels[bad][0])} out of range 0..{n_classes - 1} "
                "(a dataset with more classes needs a classes.txt beside its files)"
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(f"{source}: train and test images differ in size")


# --------------------------------------------------------------------------- cache


def cache_folder(folder: Path) -> Path:
    """Where verified arrays of ``folder`` are cached (keyed by the folder's resolved path)."""
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return user_cache_dir().parent / "arrays" / key


def write_cache(folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Cache arrays as raw ``.npy`` files plus a manifest with each file's SHA-256."""
    out = cache_folder(folder)
    manifest = {"version": _CACHE_VERSION, "meta": meta, "files": {}}
    for key, arr in arrays.items():
        buf = _npy_bytes(arr)
        atomic_write(out / f"{key}.npy", buf)
        manifest["files"][key] = sha256_hex(buf)
    atomic_write(out / "manifest.json", json.dumps(manifest, indent=1).encode())


def _npy_bytes(arr: np.ndarray) -> bytes:
    bio = io.BytesIO()
    np.save(bio, arr, allow_pickle=False)
    return bio.getvalue()


def read_cache(folder: Path, sources_mtime: float) -> tuple[dict[str, np.ndarray], dict] | None:
    """Load cached arrays of ``folder`` if present, intact and newer than the source files.

    A damaged, stale or partial cache returns None (and is logged), so the caller rebuilds it.
    """
    out = cache_folder(folder)
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("version") != _CACHE_VERSION or manifest["meta"].get("mtime") != sources_mtime:
            return None
        arrays = {}
        for key, digest in manifest["files"].items():
            buf = (out / f"{key}.npy").read_bytes()
            # Hashing ~55 MB costs ~0.1 s; it is what makes a damaged cache impossible to trust.
            if sha256_hex(buf) != digest:
                log.warning("cache file %s is damaged; rebuilding", out / f"{key}.npy")
                return None
            arrays[key] = np.load(io.BytesIO(buf), allow_pickle=False)
        if set(arrays) != set(SPLIT_FILES):
            return None
        return arrays, manifest["meta"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("no usable cache for %s (%s)", folder, exc)
        return None


def sources_mtime(folder: Path) -> float:
    return max(find_idx_file(folder, s).stat().st_mtime for s in SPLIT_FILES.values())


# --------------------------------------------------------------------------- download


def download_file(url: str, dest: Path, *, retries: int = 3, progress: Callable[[int, int], None] | None = None,
                  timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` atomically (temp file + rename), retrying on network errors.

    ``progress(done_bytes, total_bytes)`` is called as data arrives (total 0 when unknown).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_exc: Exception | None = None
    for attempt in range(1, retries + 1):
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, "wb") as f:
                total, done = int(resp.headers.get("Content-Length") or 0), 0
                while chunk := resp.read(1 << 16):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            os.replace(tmp, dest)
            return
        except OSError as exc:
            last_exc = exc
            Path(tmp).unlink(missing_ok=True)
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, exc)
            time.sleep(min(2 ** attempt, 10) if attempt < retries else 0)
    raise DatasetError(f"could not download {url}: {last_exc}")


def download_fashion_mnist(dest: Path, progress: Callable[[str, int, int], None] | None = None) -> None:
    """Fetch the four upstream ``.gz`` files into ``dest`` and check their decompressed SHA-256."""
    for stem in SPLIT_FILES.values():
        target = dest / f"{stem}.gz"
        if target.is_file():
            continue
        cb = (lambda d, t, s=stem: progress(s, d, t)) if progress else None
        download_file(UPSTREAM_URL.format(name=stem), target, progress=cb)
        if sha256_hex(read_file_bytes(target)) != FASHION_SHA256[stem]:
            target.unlink()
            raise DatasetError(f"downloaded {stem}.gz does not match Fashion-MNIST's SHA-256 (wrong mirror?)")


# --------------------------------------------------------------------------- public loading


def no_data_message(tried: list[tuple[str, Path]]) -> str:
    where = ", ".join(str(p) for _, p in tried)
    return (
        f"Fashion-MNIST not found (looked in {where}). Get it one of three ways: "
        "`sudo apt-get install dataset-fashion-mnist`; allow the download (drop --no-download); "
        "or pass --data-dir DIR holding the four IDX files"
    )


def load_from_folder(folder: Path, *, verify: bool, use_cache: bool = True) -> Dataset:
    """Load the dataset from one folder of IDX files (through the array cache when possible)."""
    mtime = sources_mtime(folder)
    cached = read_cache(folder, mtime) if use_cache else None
    if cached is not None and (cached[1].get("verified") or not verify):
        arrays, meta = cached
        source = f"{folder} (cache)"
    else:
        arrays, verified = read_verified(folder, verify)
        for key in ("train_labels", "test_labels"):
            arrays[key] = arrays[key].astype(np.int64)
        meta = {"mtime": mtime, "verified": bool(verified), "folder": str(folder)}
        validate_arrays(arrays, str(folder), len(class_names_for(folder, verified)))
        if use_cache:
            try:
                write_cache(folder, arrays, meta)
            except (OSError, RunError) as exc:  # a read-only home must not stop training
                log.warning("could not write the array cache: %s", exc)
        source = str(folder)
    verified = bool(meta.get("verified"))
    classes = class_names_for(folder, verified)
    validate_arrays(arrays, source, len(classes))  # cheap; also guards a classes.txt added later
    return Dataset(classes=classes, source=source, verified=verified, **arrays)


def load_dataset(data_dir: str | os.PathLike | None = None, *, download: bool = True, verify: bool = True,
                 use_cache: bool = True, progress: Callable[[str, int, int], None] | None = None) -> Dataset:
    """Find, verify and load Fashion-MNIST (or another IDX dataset with ``verify=False``).

    Parameters
    ----------
    data_dir : path, optional
        A folder with the four IDX files (``.gz`` or raw). When given, no other place is tried.
    download : bool
        Download the upstream files into the user cache when no folder has them.
    verify : bool
        Require the Fashion-MNIST SHA-256 of the decompressed files. Turn off to load another
        IDX dataset of the same layout (class names then come from ``classes.txt`` if present).
    use_cache : bool
        Read and write the verified ``.npy`` array cache.
    progress : callable, optional
        ``progress(file_stem, done_bytes, total_bytes)`` during a download.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Nothing found, a malformed file, or a checksum mismatch.

    Examples
    --------
    >>> ds = load_dataset(download=False)  # doctest: +SKIP
    >>> ds.train_images.shape, ds.source
    ((60000, 28, 28), '/usr/share/datasets/fashion-mnist')
    """
    tried = candidate_dirs(data_dir)
    for label, folder in tried:
        if has_all_files(folder):
            log.info("loading the dataset from %s (%s)", folder, label)
            return load_from_folder(folder, verify=verify, use_cache=use_cache)
        if label == "--data-dir":
            if not folder.is_dir():
                raise DatasetError(f"--data-dir {folder}: no such folder")
            missing = [s for s in SPLIT_FILES.values() if not find_idx_file(folder, s)]
            raise DatasetError(f"--data-dir {folder}: missing {', '.join(missing)} (.gz or raw)")
    if not download:
        raise DatasetError(no_data_message(tried))
    dest = user_cache_dir()
    log.info("downloading Fashion-MNIST into %s", dest)
    download_fashion_mnist(dest, progress)
    return load_from_folder(dest, verify=verify, use_cache=use_cache)


