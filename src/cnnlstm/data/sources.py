"""The IDX family (Fashion-MNIST, MNIST, KMNIST): sources, checksums, cache and download.

Where a family's files come from, first match wins:

1. ``data_dir`` (the CLI's ``--data-dir``);
2. ``$CNNLSTM_DATA`` (Fashion-MNIST only, as before the other families existed);
3. the user cache, ``$XDG_CACHE_HOME/cnnlstm/<name>`` (default ``~/.cache/...``);
4. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package; Fashion-MNIST only);
5. a download of the upstream files into the user cache (unless ``download=False``).

Fashion-MNIST's checksums are SHA-256 of the *decompressed* IDX bytes, so Debian's re-compressed
``.gz`` files pass and digit MNIST served by a wrong mirror fails. MNIST and KMNIST are checked
against the MD5s their publishers' mirrors give for the ``.gz`` files (the only checksums
published for them), so their uncompressed files load only with ``verify=False``. Verified arrays are cached as ``.npy`` beside
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnnlstm.data.dataset import Dataset, validate_arrays
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

_CACHE_VERSION = 2  # 2: keyed by family as well as folder


@dataclass(frozen=True)
class IdxFamily:
    """One published dataset in the IDX layout: its names, checksums and where to get it.

    Attributes
    ----------
    name : str
        The data spec that selects it (``--data NAME``).
    title : str
        Its name in messages and reports.
    classes : tuple of str
        Class names, index = label.
    checksums : dict
        File stem -> ``(algorithm, hex digest)``.
    checksum_of : {"decompressed", "gz"}
        What the digests cover: the decompressed IDX bytes, or the ``.gz`` file as published.
    url : str
        Download URL template with ``{name}`` for the file stem.
    flip_preserves_labels : bool
        False for digits and characters, whose mirror image is another (or no) symbol.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    checksums: dict[str, tuple[str, str]] = field(repr=False)
    checksum_of: str
    url: str
    flip_preserves_labels: bool


FASHION_MNIST = IdxFamily(
    "fashion-mnist", "Fashion-MNIST", FASHION_CLASSES, {k: ("sha256", v) for k, v in FASHION_SHA256.items()}, "decompressed",
    UPSTREAM_URL, flip_preserves_labels=True)
# MD5s of the .gz files as LeCun's MNIST mirror (also used by torchvision) serves them.
MNIST = IdxFamily(
    "mnist", "MNIST", tuple(str(d) for d in range(10)), {
        "train-images-idx3-ubyte": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    }, "gz", "https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz", flip_preserves_labels=False)
# Clanuwat et al. (2018), arXiv 1812.01718; files and MD5s from github.com/rois-codh/kmnist.
KMNIST = IdxFamily(
    "kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), {
        "train-images-idx3-ubyte": ("md5", "bdb82020997e1d708af4cf47b453dcf7"),
        "train-labels-idx1-ubyte": ("md5", "e144d726b3acfaa3e44228e80efcd344"),
        "t10k-images-idx3-ubyte": ("md5", "5c965bf0a639b31b8f53240b1b52f4d7"),
        "t10k-labels-idx1-ubyte": ("md5", "7320c461ea6c1c855c0b718fb2a4b134"),
    }, "gz", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/{name}.gz", flip_preserves_labels=False)

_ALGO_NAMES = {"sha256": "SHA-256", "md5": "MD5"}

#: The IDX datasets ``--data`` names, by name.
IDX_FAMILIES = {f.name: f for f in (FASHION_MNIST, MNIST, KMNIST)}


def idx_family(name: str) -> IdxFamily:
    try:
        return IDX_FAMILIES[name]
    except KeyError:
        raise DatasetError(f"unknown IDX dataset {name!r}; valid: {', '.join(IDX_FAMILIES)}") from None


# --------------------------------------------------------------------------- IDX reading


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/cnnlstm`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlstm"


def user_cache_dir(family: IdxFamily = FASHION_MNIST) -> Path:
    """``$XDG_CACHE_HOME/cnnlstm/<family>`` (``~/.cache`` when unset): downloads go here."""
    return cache_root() / family.name


def candidate_dirs(data_dir: str | os.PathLike | None, family: IdxFamily = FASHION_MNIST) -> list[tuple[str, Path]]:
    """The folders searched for IDX files, in order, each with a label for messages."""
    if data_dir is not None:
        return [("--data-dir", Path(data_dir))]  # explicit choice: never fall back silently
    found = []
    if family is FASHION_MNIST and os.environ.get("CNNLSTM_DATA"):
        found.append(("$CNNLSTM_DATA", Path(os.environ["CNNLSTM_DATA"])))
    found.append(("cache", user_cache_dir(family)))
    if family is FASHION_MNIST:
        found.append(("debian", DEBIAN_DIR))
    return found


def has_all_files(folder: Path) -> bool:
    return folder.is_dir() and all(find_idx_file(folder, s) for s in SPLIT_FILES.values())


def file_matches(path: Path, raw: bytes, stem: str, family: IdxFamily) -> bool | None:
    """Whether one file matches the family's published checksum; None when it cannot be told
    (a family whose digests cover the ``.gz`` files, and an uncompressed file)."""
    algo, digest = family.checksums[stem]
    if family.checksum_of == "decompressed":
        data = raw
    elif path.suffix == ".gz":
        data = path.read_bytes()
    else:
        return None
    return hashlib.new(algo, data, usedforsecurity=False).hexdigest() == digest


def read_verified(folder: Path, verify: bool, family: IdxFamily = FASHION_MNIST) -> tuple[dict[str, np.ndarray], bool]:
    """Read the four IDX files of ``folder``; check them against ``family``'s checksums if asked."""
    arrays, all_match = {}, True
    for key, stem in SPLIT_FILES.items():
        path = find_idx_file(folder, stem)
        if path is None:
            raise DatasetError(f"{folder}: missing {stem}(.gz)")
        raw = read_file_bytes(path)
        if verify or all_match:  # keep hashing while it may still prove to be the named dataset
            match = file_matches(path, raw, stem, family)
            if verify and match is None:
                raise DatasetError(
                    f"{path}: {family.title}'s published checksums are of the .gz files; "
                    "use the .gz files, or --no-verify to load uncompressed ones unchecked")
            if verify and not match:
                raise DatasetError(
                    f"{path}: {_ALGO_NAMES[family.checksums[stem][0]]} does not match {family.title}'s "
                    "(another dataset, or a damaged file); use --no-verify to load another IDX dataset on purpose"
                )
            all_match = all_match and bool(match)
        arrays[key] = parse_idx(raw, name=str(path))
    return arrays, all_match


def class_names_for(folder: Path, verified: bool, family: IdxFamily = FASHION_MNIST) -> tuple[str, ...]:
    """``classes.txt`` beside the files, else the family's names when verified, else ``class 0`` .. ``class 9``.

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
        return family.classes
    return tuple(f"class {i}" for i in range(len(family.classes)))


# --------------------------------------------------------------------------- cache


def cache_folder(folder: Path, family: IdxFamily = FASHION_MNIST) -> Path:
    """Where the arrays of ``folder`` are cached (keyed by the family and the folder's resolved path)."""
    key = hashlib.sha256(f"{family.name}\n{folder.resolve()}".encode()).hexdigest()[:16]
    return cache_root() / "arrays" / key


def write_cache(out: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Cache arrays in folder ``out`` as raw ``.npy`` files plus a manifest with each file's SHA-256."""
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


def read_cache(out: Path, fresh: Callable[[dict], bool]) -> tuple[dict[str, np.ndarray], dict] | None:
    """Load the arrays cached in folder ``out`` if present, intact and ``fresh(meta)``.

    A damaged, stale or partial cache returns None (and is logged), so the caller rebuilds it.
    """
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("version") != _CACHE_VERSION or not fresh(manifest["meta"]):
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
        log.debug("no usable cache in %s (%s)", out, exc)
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


def download_idx(dest: Path, family: IdxFamily = FASHION_MNIST,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
    """Fetch the four upstream ``.gz`` files of ``family`` into ``dest`` and check their checksums."""
    for stem in SPLIT_FILES.values():
        target = dest / f"{stem}.gz"
        if target.is_file():
            continue
        cb = (lambda d, t, s=stem: progress(s, d, t)) if progress else None
        download_file(family.url.format(name=stem), target, progress=cb)
        if not file_matches(target, read_file_bytes(target), stem, family):
            target.unlink()
            raise DatasetError(f"downloaded {stem}.gz does not match {family.title}'s checksum (wrong mirror?)")


def download_fashion_mnist(dest: Path, progress: Callable[[str, int, int], None] | None = None) -> None:
    """Fetch Fashion-MNIST's four ``.gz`` files into ``dest`` (:func:`download_idx`)."""
    download_idx(dest, FASHION_MNIST, progress)


# --------------------------------------------------------------------------- public loading


def no_data_message(tried: list[tuple[str, Path]], family: IdxFamily = FASHION_MNIST) -> str:
    where = ", ".join(str(p) for _, p in tried)
    debian = "`sudo apt-get install dataset-fashion-mnist`; " if family is FASHION_MNIST else ""
    return (
        f"{family.title} not found (looked in {where}). Get it one of {'three' if debian else 'two'} ways: "
        f"{debian}allow the download (drop --no-download); or pass --data-dir DIR holding the four IDX files"
    )


def try_write_cache(out: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """:func:`write_cache`, logging instead of failing: a read-only home must not stop training."""
    try:
        write_cache(out, arrays, meta)
    except (OSError, RunError) as exc:
        log.warning("could not write the array cache: %s", exc)


def load_from_folder(folder: Path, *, verify: bool, use_cache: bool = True,
                     family: IdxFamily = FASHION_MNIST) -> Dataset:
    """Load the dataset from one folder of IDX files (through the array cache when possible)."""
    mtime = sources_mtime(folder)
    out = cache_folder(folder, family)
    cached = read_cache(out, lambda meta: meta.get("mtime") == mtime) if use_cache else None
    if cached is not None and (cached[1].get("verified") or not verify):
        arrays, meta = cached
        source = f"{folder} (cache)"
    else:
        arrays, verified = read_verified(folder, verify, family)
        for key in ("train_labels", "test_labels"):
            arrays[key] = arrays[key].astype(np.int64)
        meta = {"mtime": mtime, "verified": bool(verified), "folder": str(folder)}
        validate_arrays(arrays, str(folder), len(class_names_for(folder, verified, family)))
        if use_cache:
            try_write_cache(out, arrays, meta)
        source = str(folder)
    verified = bool(meta.get("verified"))
    classes = class_names_for(folder, verified, family)
    validate_arrays(arrays, source, len(classes))  # cheap; also guards a classes.txt added later
    return Dataset(classes=classes, source=source, verified=verified, name=family.name,
                   flip_preserves_labels=family.flip_preserves_labels, **arrays)


def load_dataset(data_dir: str | os.PathLike | None = None, *, download: bool = True, verify: bool = True,
                 use_cache: bool = True, progress: Callable[[str, int, int], None] | None = None,
                 name: str = "fashion-mnist") -> Dataset:
    """Find, verify and load an IDX dataset: Fashion-MNIST by default, or ``mnist`` / ``kmnist``.

    Any other dataset of the same layout loads with ``verify=False``; :func:`cnnlstm.data.load_data`
    also reads image folders and ``.npz`` files.

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
    name : {"fashion-mnist", "mnist", "kmnist"}
        Which published dataset: its checksums, class names, cache folder and download URL.

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
    family = idx_family(name)
    tried = candidate_dirs(data_dir, family)
    for label, folder in tried:
        if has_all_files(folder):
            log.info("loading %s from %s (%s)", family.title, folder, label)
            return load_from_folder(folder, verify=verify, use_cache=use_cache, family=family)
        if label == "--data-dir":
            if not folder.is_dir():
                raise DatasetError(f"--data-dir {folder}: no such folder")
            missing = [s for s in SPLIT_FILES.values() if not find_idx_file(folder, s)]
            raise DatasetError(f"--data-dir {folder}: missing {', '.join(missing)} (.gz or raw)")
    if not download:
        raise DatasetError(no_data_message(tried, family))
    dest = user_cache_dir(family)
    log.info("downloading %s into %s", family.title, dest)
    download_idx(dest, family, progress)
    return load_from_folder(dest, verify=verify, use_cache=use_cache, family=family)


