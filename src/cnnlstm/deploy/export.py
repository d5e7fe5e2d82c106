"""Export a run's model for deployment: TorchScript or ONNX, plus a JSON preprocessing card.

The exported model is :class:`ProbabilityModel`: the run's classifier followed by a softmax.

- input ``images``: float32 ``(N, C, S, S)``, any N, with the channels ``C`` (1 grey, 3 RGB) and
  side ``S`` of the run's dataset, normalised like the training images, per channel
  ``(pixel / 255 - mean) / std`` with the training split's statistics (Fashion-MNIST:
  ``(N, 1, 28, 28)``, ``(pixel / 255 - 0.2860) / 0.3530``, the object light on a dark background;
  see :mod:`cnnlstm.deploy.images` for turning a photo into such an image);
- output ``probs``: float32 ``(N, num_classes)``, softmax probabilities (rows sum to 1).

Beside ``FILE`` goes ``FILE.json`` (and the same card is embedded in the file: TorchScript
``extra_files["cnnlstm.json"]``, ONNX ``metadata_props["cnnlstm"]``) with the input layout, mean,
std, the preprocessing rule and the class names. Every export is checked before it is kept: the
saved file is loaded back and run on a batch of another size than the one used for tracing, and
its probabilities must match PyTorch's to :data:`TOLERANCE`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlstm._version import __version__
from cnnlstm.data import FASHION_NORM, Norm
from cnnlstm.deploy.images import IMAGE_SIZE, LIGHT_BACKGROUND, MAX_IMAGE_PIXELS, MIN_SIDE, OBJECT_THRESHOLD
from cnnlstm.deploy.predict import load_predictor
from cnnlstm.errors import UserError
from cnnlstm.fileio import write_json
from cnnlstm.runs import atomic_write

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
DEFAULT_FILE = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
TOLERANCE = 1e-5  # max |exported - PyTorch| probability accepted when checking an export
TRACE_BATCH, CHECK_BATCH = 2, 5  # different sizes, so a batch size baked into the graph is caught
ONNX_OPSET = 18  # old enough for every current runtime (onnxruntime >= 1.14), new enough for LSTM as one node


class ExportError(UserError):
    """An export cannot be made (e.g. the ONNX packages are not installed)."""


class ProbabilityModel(nn.Module):
    """``softmax(model(images), dim=1)``: what the exported file computes.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits ``(N, classes)`` for images ``(N, C, H, W)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, classes)`` for normalised images ``(N, C, H, W)``."""
        return torch.softmax(self.model(images), dim=1)


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and how closely it matches PyTorch.

    Attributes
    ----------
    path, card : Path
        The model file and its ``.json`` card.
    format : str
    max_abs_diff : float
        Largest probability difference to PyTorch on the check batch.
    """

    path: Path
    card: Path
    format: str
    max_abs_diff: float


def preprocessing_card(classes, *, model: str, fmt: str, run_dir: Path, weights: Path,
                       size: int = IMAGE_SIZE, norm: Norm = FASHION_NORM, as_dataset: bool = False) -> dict:
    """The JSON card describing the exported model's input, output and preprocessing.

    ``as_dataset``: the run trained on an image folder or ``.npz``, whose files are decoded
    plainly (:func:`cnnlstm.data.folders.decode_image`), not by Fashion-MNIST's preprocessing.
    """
    channels = norm.channels
    if as_dataset:
        preprocessing = {
            "size": size, "mean": list(norm.mean), "std": list(norm.std),
            "mode": "RGB" if channels == 3 else "L (greyscale)",
            "resize": f"to {size}x{size} with Pillow's bilinear filter (stretching a non-square image)",
            "reference": "cnnlstm.data.folders.decode_image",
        }
    else:
        preprocessing = {
            "size": size, "mean": norm.mean[0], "std": norm.std[0],
            "grayscale": "ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B); alpha composited on white",
            "invert": f"if the median of the border pixels is > {LIGHT_BACKGROUND}, pixel = 255 - pixel "
                      "(object light on a dark background, like Fashion-MNIST)",
            "passthrough": f"a {size}x{size} image is only inverted (if needed): no trim, no resize",
            "trim": f"subtract the border median (clip at 0), crop to pixels > {OBJECT_THRESHOLD:.2f}",
            "resize": f"longest side to {size} px keeping the aspect ratio (Lanczos)",
            "center": f"paste on a black {size}x{size} canvas; an odd margin puts its extra pixel top/left",
            "limits": {"min_side": MIN_SIDE, "max_pixels": MAX_IMAGE_PIXELS},
            "reference": "cnnlstm.deploy.images.load_image",
        }
    return {
        "format": fmt,
        "model": model,
        "run": str(run_dir),
        "weights": weights.name,
        "input": {"name": "images", "dtype": "float32", "shape": ["N", channels, size, size],
                  "normalisation": "x = (pixel / 255 - mean) / std, pixel in 0..255, per channel"},
        "output": {"name": "probs", "dtype": "float32", "shape": ["N", len(classes)],
                   "meaning": "softmax probabilities, one row per image, columns = classes"},
        "preprocessing": preprocessing,
        "classes": list(classes),
        "cnnlstm_version": __version__,
        "torch_version": torch.__version__,
    }


@contextmanager
def _quiet_exporters():
    """Silence the exporters' deprecation chatter and their loggers for the duration."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript",
                                            "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace is deprecated; LSTM's input check warns when traced
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def torchscript_bytes(module: nn.Module, example: torch.Tensor, card: dict) -> bytes:
    """A traced TorchScript archive of ``module`` with ``card`` as ``extra_files["cnnlstm.json"]``."""
    with _quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={"cnnlstm.json": json.dumps(card)})
    return buf.getvalue()


def onnx_bytes(module: nn.Module, example: torch.Tensor, card: dict) -> bytes:
    """An ONNX model of ``module`` (dynamic batch axis ``N``) with ``card`` in ``metadata_props``.

    Raises
    ------
    ExportError
        ``onnx`` or ``onnxscript`` (needed by torch's exporter) is not installed.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
                          "pip install 'cnnlstm[onnx]'") from exc
    with _quiet_exporters():
        program = torch.onnx.export(
            module, (example,), None, input_names=["images"], output_names=["probs"],
            dynamic_shapes={"images": {0: torch.export.Dim("N")}}, opset_version=ONNX_OPSET,
            dynamo=True, verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"cnnlstm": json.dumps(card)})
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def run_exported(path: str | Path, fmt: str, images: np.ndarray) -> np.ndarray:
    """Run an exported file on ``images`` ``float32 (N, C, H, W)``; returns probabilities ``(N, classes)``.

    ONNX files run on :class:`onnx.reference.ReferenceEvaluator` (pure NumPy, no onnxruntime).
    """
    if fmt == "torchscript":
        with _quiet_exporters():
            loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return loaded(torch.from_numpy(images)).numpy()
    from onnx.reference import ReferenceEvaluator

    return np.asarray(ReferenceEvaluator(str(path)).run(None, {"images": images})[0])


def check_batch(n: int, size: int = IMAGE_SIZE, seed: int = 0, norm: Norm = FASHION_NORM) -> np.ndarray:
    """A fixed batch of ``n`` normalised-looking images ``float32 (n, C, size, size)``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, norm.channels, size, size)).astype(np.float32)
    mean = np.asarray(norm.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm.std, np.float32).reshape(1, -1, 1, 1)
    return ((pixels / 255.0 - mean) / std).astype(np.float32)


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, which: str = "best") -> ExportResult:
    """Export a run's weights as TorchScript or ONNX, write the card, and check the result.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``cnnlstm train``.
    fmt : {"torchscript", "onnx"}
    out : path, optional
        The model file (default ``RUN_DIR/model.torchscript.pt`` or ``RUN_DIR/model.onnx``); the
        card goes to ``<out>.json``.
    which : {"best", "last"}
        ``best.pt`` or ``checkpoint.pt``.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Unknown format, or ONNX packages missing.
    RuntimeError
        The saved file disagrees with PyTorch by more than :data:`TOLERANCE` (it is removed).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    run = load_predictor(run_dir, which, "cpu")
    path = Path(out) if out is not None else run.run_dir / DEFAULT_FILE[fmt]
    card = preprocessing_card(run.classes, model=run.config.model, fmt=fmt, run_dir=run.run_dir,
                              weights=run.weights, size=run.image_size, norm=run.norm, as_dataset=run.as_dataset)
    module = ProbabilityModel(run.model).eval()
    example = torch.from_numpy(check_batch(TRACE_BATCH, run.image_size, seed=1, norm=run.norm))
    data = torchscript_bytes(module, example, card) if fmt == "torchscript" else onnx_bytes(module, example, card)
    atomic_write(path, data)
    diff = _check_export(module, path, fmt, run.image_size, run.norm)
    card["check"] = {"images": CHECK_BATCH, "max_abs_diff": diff, "tolerance": TOLERANCE}
    card_path = path.with_name(path.name + ".json")
    write_json(card_path, card)
    log.debug("exported %s to %s (max |diff| to PyTorch %.2e)", run.weights, path, diff)
    return ExportResult(path=path, card=card_path, format=fmt, max_abs_diff=diff)


def _check_export(module: nn.Module, path: Path, fmt: str, size: int, norm: Norm = FASHION_NORM) -> float:
    """Max |exported - PyTorch| on a fresh batch; removes the file and raises past the tolerance."""
    x = check_batch(CHECK_BATCH, size, norm=norm)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = run_exported(path, fmt, x)
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff <= TOLERANCE:
        os.unlink(path)
        raise RuntimeError(f"the {fmt} export of {path} disagrees with PyTorch (max |diff| {diff:.3g}, "
                           f"shape {got.shape} vs {expected.shape}); nothing was kept")
    return diff
