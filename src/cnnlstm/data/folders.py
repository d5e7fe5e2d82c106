"""A folder of image files as a dataset: decoded once with Pillow into the one-array cache.

Two layouts, told apart by the folder's first level:

- ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``: the split is the folder's own;
- ``DIR/<class>/*``: one tree, split into train and test by a seeded stratified split
  (:data:`TEST_FRACTION` of each class to test, seed :data:`SPLIT_SEED`), recorded in
  ``Dataset.split`` and so in every run folder.

Class names are the sub-folder names in sorted order (label = position). Files with the
extensions in :data:`IMAGE_EXTENSIONS` are images; other files and hidden files are ignored.

Decoding rules, stated once:

- **Channels.** Each file is read with Pillow. When every image is greyscale (Pillow modes ``1``,
  ``L``, ``LA``, ``I``, ``I;16``, ``F``, or a palette image whose colours are all grey) the
  dataset is greyscale ``(N, H, W)``. When any image has colour, every image is converted to RGB
  ``(N, H, W, 3)``; a greyscale image then repeats its grey value in the three channels. An
  alpha channel is dropped (not composited): the colour channels are kept as stored.
- **Size.** With ``image_size = 0`` every image must already be square and of one size, else
  the load fails naming two files of different sizes. With ``image_size = S`` each image is
  resized to ``S x S`` with Pillow's bilinear filter (antialiased when shrinking), stretching a
  non-square image rather than cropping it.
- **Cache.** The arrays are cached under the user cache, keyed by a SHA-256 of every file's
  relative path and contents plus the decoding settings, so a changed, added or removed file
  means a new decode, and an unchanged folder loads without touching Pillow.

An optional ``DIR/dataset.toml`` describes the dataset: ``flip_preserves_labels = false`` for
data whose mirror image is another class (digits, text); true when absent.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import tomllib

from cnnlstm.data.dataset import Dataset, validate_arrays
from cnnlstm.data.sources import cache_root, read_cache, try_write_cache
from cnnlstm.data.splits import stratified_split
from cnnlstm.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
TEST_FRACTION = 0.2  # of each class, for a single-tree folder
SPLIT_SEED = 0
MAX_SIDE = 4096  # larger images are refused: this is a classifier of small images, not a photo tool
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_FOLDER_VERSION = 1


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def scan_folder(root: Path) -> tuple[dict[str, list[tuple[Path, int]]], tuple[str, ...], str]:
    """The image files of each split with their labels, the class names, and the layout.

    Returns ``({"train": [(path, label), ...], "test": [...] or absent}, classes, layout)`` with
    layout ``"train/test"`` or ``"single"``. Every rule about a folder's shape is checked here,
    each failure one :class:`DatasetError` naming the folder or class.
    """
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    top = {p.name: p for p in _class_dirs(root)}
    layout = "train/test" if {"train", "test"} <= set(top) else "single"
    train_root = top["train"] if layout == "train/test" else root
    classes = tuple(p.name for p in _class_dirs(train_root))
    if not classes:
        raise DatasetError(f"{train_root}: no class folders (expected {train_root}/<class>/<image files>)")
    if len(classes) < 2:
        raise DatasetError(f"{train_root}: only one class ({classes[0]}); a classifier needs at least 2")
    files: dict[str, list[tuple[Path, int]]] = {"train": []}
    for label, name in enumerate(classes):
        found = _image_files(train_root / name)
        if not found:
            raise DatasetError(f"{train_root / name}: class {name!r} has no image files "
                               f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        files["train"] += [(p, label) for p in found]
    if layout == "train/test":
        test_root = top["test"]
        index = {name: i for i, name in enumerate(classes)}
        files["test"] = []
        for class_dir in _class_dirs(test_root):
            if class_dir.name not in index:
                raise DatasetError(f"{class_dir}: test class {class_dir.name!r} is not a class of {train_root}")
            files["test"] += [(p, index[class_dir.name]) for p in _image_files(class_dir)]
        if not files["test"]:
            raise DatasetError(f"{test_root}: no image files in any class folder")
    return files, classes, layout


def folder_key(root: Path, files: dict[str, list[tuple[Path, int]]], image_size: int) -> str:
    """SHA-256 of the decoding settings and every file's split, label, relative path and bytes."""
    digest = hashlib.sha256(f"v{_FOLDER_VERSION} size={image_size} test={TEST_FRACTION} "
                            f"seed={SPLIT_SEED}\n".encode())
    for split in sorted(files):
        for path, label in files[split]:
            digest.update(f"{split}\0{label}\0{path.relative_to(root).as_posix()}\0".encode())
            try:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            except OSError as exc:
                raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        if max(img.size) > MAX_SIDE:
            raise DatasetError(f"{path}: {img.size[0]}x{img.size[1]} is larger than {MAX_SIDE} px a side")
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from exc


def _is_grey(img) -> bool:
    if img.mode in _GREY_MODES:
        return True
    if img.mode == "P":
        palette = np.asarray(img.convert("RGB"))
        return bool((palette[..., 0] == palette[..., 1]).all() and (palette[..., 1] == palette[..., 2]).all())
    return False


def _to_array(img, colour: bool, image_size: int) -> np.ndarray:
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greyscale -> 8 bits
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    img = img.convert("RGB" if colour else "L")
    if image_size and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(path: str | Path, *, colour: bool, image_size: int) -> np.ndarray:
    """One file decoded as a folder dataset's images are: ``(S, S)`` grey or ``(S, S, 3)`` RGB uint8."""
    with _open(Path(path)) as img:
        return _to_array(img, colour, image_size)


def decode_files(files: list[tuple[Path, int]], image_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Decode ``files``, each in its own kind: ``(S, S)`` for a grey image, ``(S, S, 3)`` for colour.

    One pass over the files; :func:`stack_images` then makes the set one kind. Decoding a grey
    image as ``L`` and repeating it equals Pillow's ``L -> RGB`` conversion, resize included.
    """
    images, first = [], None
    for path, _ in files:
        with _open(path) as img:
            if not image_size:
                if first is None:
                    first = (path, img.size)
                elif img.size != first[1]:
                    raise DatasetError(
                        f"images differ in size ({first[0]} is {first[1][0]}x{first[1][1]}, {path} is "
                        f"{img.size[0]}x{img.size[1]}); pass --image-size N to resize them all to NxN")
                if img.size[0] != img.size[1]:
                    raise DatasetError(f"{path} is {img.size[0]}x{img.size[1]}, not square; "
                                       "pass --image-size N to resize every image to NxN")
            images.append(_to_array(img, not _is_grey(img), image_size))
    return images, np.array([label for _, label in files], dtype=np.int64)


def stack_images(images: list[np.ndarray], colour: bool) -> np.ndarray:
    """``(N, S, S)`` or, with ``colour``, ``(N, S, S, 3)``, grey images repeated in the three channels."""
    if colour:
        images = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in images]
    return np.stack(images)


def read_description(root: Path) -> dict:
    """``DIR/dataset.toml``, when present: ``flip_preserves_labels`` (bool) is its one key."""
    path = root / "dataset.toml"
    if not path.is_file():
        return {}
    try:
        desc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    unknown = set(desc) - {"flip_preserves_labels"}
    if unknown:
        raise DatasetError(f"{path}: unknown key {sorted(unknown)[0]!r}; valid: flip_preserves_labels")
    if not isinstance(desc.get("flip_preserves_labels", True), bool):
        raise DatasetError(f"{path}: flip_preserves_labels must be true or false")
    return desc


def load_image_folder(root: str | Path, *, image_size: int = 0, use_cache: bool = True) -> Dataset:
    """Load a folder of images (see the module docstring for the layout and decoding rules).

    Parameters
    ----------
    root : path
        ``DIR`` with ``train/`` and ``test/`` class folders, or class folders directly.
    image_size : int
        Resize every image to this square side; 0 keeps the images' own (one, square) size.
    use_cache : bool
        Read and write the decoded arrays in the user cache.

    Returns
    -------
    Dataset
        Named by the folder's resolved path.

    Raises
    ------
    DatasetError
        A folder that breaks a rule: no classes, one class, an empty class, an unreadable image
        (named), a test class unknown to train, images of different sizes without ``image_size``.
    """
    if image_size < 0:
        raise DatasetError(f"image_size must be >= 0, got {image_size}")
    root = Path(root).expanduser().resolve()
    files, classes, layout = scan_folder(root)
    desc = read_description(root)
    split = "" if layout == "train/test" else (
        f"stratified: {TEST_FRACTION:.0%} of each class to test, seed {SPLIT_SEED}")
    key = folder_key(root, files, image_size)
    out = cache_root() / "folders" / key[:24]
    cached = read_cache(out, lambda meta: meta.get("key") == key) if use_cache else None
    if cached is not None:
        arrays, _ = cached
        source = f"{root} (cache)"
        validate_arrays(arrays, source, len(classes))  # cheap; a cache is never trusted blindly
    else:
        decoded = {split: decode_files(split_files, image_size) for split, split_files in files.items()}
        colour = any(a.ndim == 3 for images, _ in decoded.values() for a in images)
        log.info("decoded %d images of %s (%s)", sum(len(y) for _, y in decoded.values()), root,
                 "RGB" if colour else "greyscale")
        x, y = stack_images(decoded["train"][0], colour), decoded["train"][1]
        if layout == "train/test":
            arrays = {"train_images": x, "train_labels": y,
                      "test_images": stack_images(decoded["test"][0], colour), "test_labels": decoded["test"][1]}
        else:
            arrays = split_arrays(x, y, root)
        validate_arrays(arrays, str(root), len(classes))
        if use_cache:
            try_write_cache(out, arrays, {"key": key, "folder": str(root)})
        source = str(root)
    return Dataset(classes=classes, source=source, verified=False, name=str(root),
                   flip_preserves_labels=desc.get("flip_preserves_labels", True), split=split, **arrays)


def split_arrays(x: np.ndarray, y: np.ndarray, root: Path) -> dict[str, np.ndarray]:
    """One tree's images into train and test: :data:`TEST_FRACTION` of each class to test."""
    counts = np.bincount(y)
    if (counts < 2).any():
        small = int(np.flatnonzero(counts < 2)[0])
        raise DatasetError(f"{root}: class {small} has {int(counts[small])} image; a single-tree folder needs "
                           "at least 2 per class to split into train and test")
    n_test = max(len(counts), int(round(TEST_FRACTION * len(y))))
    train_idx, test_idx = stratified_split(y, n_test, SPLIT_SEED)
    return {"train_images": x[train_idx], "train_labels": y[train_idx],
            "test_images": x[test_idx], "test_labels": y[test_idx]}
