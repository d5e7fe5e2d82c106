"""Fuzzing the readers of untrusted files: image/.npy loading and the IDX parser.

Property: whatever the bytes, the image loader returns a ``uint8 (28, 28)`` array or raises
:class:`ImageError`, and the IDX reader returns an array or raises :class:`DatasetError` --
never another exception, never a hang (hypothesis' ``deadline``).
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlstm.data import idx
from cnnlstm.deploy.images import load_image, load_image_bytes
from cnnlstm.errors import DatasetError, ImageError

from conftest import idx_bytes

# Pillow warns about some damaged files it can still decode (e.g. TIFF tags past the end): expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NAMES = ("x.png", "x.jpg", "x.npy", "x.gif", "x")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _seed_files() -> dict[str, bytes]:
    """Small valid files of every kind the loader takes, for mutation."""
    rng = np.random.default_rng(0)
    gray = np.zeros((28, 28), np.uint8)
    gray[6:22, 9:19] = rng.integers(100, 255, (16, 10), dtype=np.uint8)
    photo = Image.fromarray(255 - np.kron(gray, np.ones((2, 2), np.uint8))).convert("RGB")  # 56x56
    return {
        "gray.png": _encode(Image.fromarray(gray), "PNG"),
        "rgb.png": _encode(photo, "PNG"),
        "rgba.png": _encode(photo.convert("RGBA"), "PNG"),
        "palette.gif": _encode(photo.convert("P"), "GIF"),
        "photo.jpg": _encode(photo, "JPEG", quality=80),
        "photo.bmp": _encode(photo, "BMP"),
        "photo.tiff": _encode(photo, "TIFF"),
        "photo.webp": _encode(photo, "WEBP"),
        "raw.npy": _npy(gray),
        "float.npy": _npy(gray[None].astype(np.float32) / 255.0),
        "rgb.npy": _npy(np.asarray(photo)),
    }


SEEDS = _seed_files()


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """A seed file with a few random edits: byte overwrites, a truncation, an insertion."""
    name = draw(st.sampled_from(sorted(seeds)))
    buf = bytearray(seeds[name])
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(buf) - 1))
        buf[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del buf[draw(st.integers(0, len(buf))):]
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(buf)))
        buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return name, bytes(buf)


def _check_image_outcome(payload: bytes, name: str) -> None:
    try:
        out = load_image_bytes(payload, name)
    except ImageError as exc:
        assert str(exc).startswith(name) and "\n" not in str(exc)
        return
    assert out.shape == (28, 28) and out.dtype == np.uint8


def test_every_seed_file_loads():
    """The mutations start from files that are valid, so the fuzzing explores near-valid input."""
    for name, payload in SEEDS.items():
        assert load_image_bytes(payload, name).shape == (28, 28), name


@FUZZ
@given(payload=st.binary(max_size=2048), name=st.sampled_from(NAMES))
@example(payload=b"", name="x.png")
@example(payload=b"\x93NUMPY", name="x.npy")
@example(payload=b"\x89PNG\r\n\x1a\n", name="x.png")
def test_random_bytes_give_an_image_or_an_image_error(payload, name):
    _check_image_outcome(payload, name)


@FUZZ
@given(item=mutated(SEEDS), name=st.sampled_from(NAMES + ("same",)))
def test_mutated_images_give_an_image_or_an_image_error(item, name):
    seed_name, payload = item
    _check_image_outcome(payload, seed_name if name == "same" else name)


@st.composite
def npy_headers(draw) -> bytes:
    """Valid-looking .npy headers with hostile dtypes, shapes and payload sizes."""
    descr = draw(st.sampled_from(["|u1", "<f4", ">f8", "<i8", "|b1", "|O", "<c8", "|S3", "<M8[s]",
                                  "[('a', '<i4')]", "'<f2'", "???"]))
    shape = draw(st.lists(st.integers(-2, 2**40), max_size=4))
    fortran = draw(st.sampled_from(["False", "True", "1"]))
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    header = header.encode("latin1") + b" " * ((-len(header) - 11) % 64) + b"\n"
    body = draw(st.binary(max_size=256))
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


UNCLOSED_HEADER = b"{'descr': '|u1', 'fortran_order': False, 'shape': (28,\n"


@FUZZ
@given(payload=npy_headers())
@example(payload=b"\x93NUMPY\x01\x00" + struct.pack("<H", len(UNCLOSED_HEADER)) + UNCLOSED_HEADER)  # TokenError
def test_hostile_npy_headers_give_an_image_or_an_image_error(payload):
    _check_image_outcome(payload, "x.npy")


def test_fuzzing_goes_through_files_too(tmp_path):
    """Paths with spaces and non-ASCII names, through load_image rather than the bytes API."""
    path = tmp_path / "mutiert ä.png"
    for name, payload in SEEDS.items():
        path.write_bytes(payload[: len(payload) // 2])
        with pytest.raises(ImageError, match="mutiert ä.png"):
            load_image(path)


# --------------------------------------------------------------------------- IDX


def _idx_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 5, 4), dtype=np.uint8)
    labels = np.array([0, 9, 3], np.uint8)
    floats = bytes([0, 0, 0x0D, 2]) + struct.pack(">II", 2, 3) + np.arange(6, dtype=">f4").tobytes()
    return [idx_bytes(images), idx_bytes(labels), floats]


IDX_SEEDS = _idx_seeds()


def _check_idx_outcome(payload: bytes) -> None:
    try:
        arr = idx.parse_idx(payload, name="fuzz")
    except DatasetError:
        return
    assert isinstance(arr, np.ndarray) and arr.ndim == payload[3]


@FUZZ
@given(payload=st.binary(max_size=512))
@example(payload=bytes([0, 0, 8, 1]) + struct.pack(">I", 0))  # a valid, empty 1-D file
def test_parse_idx_random_bytes(payload):
    _check_idx_outcome(payload)


@FUZZ
@given(item=mutated({f"s{i}": s for i, s in enumerate(IDX_SEEDS)}))
def test_parse_idx_mutated_bytes(item):
    _check_idx_outcome(item[1])


def test_parse_idx_overflowing_dims_are_a_dataset_error():
    """Found by fuzzing: an int64 product of 4 dims of 65536 wrapped to 0 and 'matched' the file."""
    payload = bytes([0, 0, 8, 4]) + struct.pack(">4I", 65536, 65536, 65536, 65536)
    with pytest.raises(DatasetError):
        idx.parse_idx(payload, name="overflow")


@FUZZ
@given(item=mutated({f"s{i}": gzip.compress(s, mtime=0) for i, s in enumerate(IDX_SEEDS)}),
       suffix=st.sampled_from([".gz", ""]))
def test_read_file_bytes_on_mutated_gzip(item, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t10k-images-idx3-ubyte{suffix}"
        path.write_bytes(item[1])
        try:
            raw = idx.read_file_bytes(path)
        except DatasetError:
            return
        assert isinstance(raw, bytes)
        _check_idx_outcome(raw)
