"""The one home of a run folder: files, checkpoints and checksums, history, lock, loading a run.

A run folder holds ``config.json``, ``history.csv``, ``checkpoint.pt`` (last state, for exact
resume), ``best.pt`` (best validation weights), ``checksums.json`` (their SHA-256),
``metrics.json``, ``predictions.npz``, ``dataset.json`` (what it trained on), ``model_file.json``
(for a model from a user's file: that file and its SHA-256), ``figures/`` and the reports. Every file is written
through a temp file and a rename (:func:`cnnlstm.fileio.atomic_write`), so a crash or a full
disk never leaves half a file where a whole one was.

Reading a trained run (:func:`load_run_config`, :func:`load_run_model`) needs neither the
training loop nor the experiment glue, so prediction and export import only this module.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlstm.errors import ConfigError, RunError
from cnnlstm.fileio import (  # the run folder's file formats and lock live with the atomic writer
    atomic_write,
    read_json,
    sha256_hex,
    write_json,
)

if TYPE_CHECKING:  # torch and the models are imported only by the functions that need them
    import torch

    from cnnlstm.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
CHECKSUMS = "checksums.json"  # SHA-256 of each checkpoint file of a run folder


def default_run_dir(model: str, root: str | Path = "runs") -> Path:
    """``runs/<model>-<YYYYmmdd-HHMMSS>`` (a suffix is added if that name exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{model}-{stamp}-{n}"
    return path


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to memory, record its SHA-256, then an atomic write of the file.

    The digest goes into the folder's ``checksums.json`` *before* the file is replaced (see
    :func:`record_checksum`), so a crash between the two writes leaves a file that still verifies.
    """
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    record_checksum(path, payload)
    atomic_write(path, payload)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint safely: ``weights_only=True`` never runs code from the file.

    A checkpoint may come from anywhere (a download, a shared folder), so it is untrusted input:
    its pickle may only rebuild tensors and plain containers, and any failure to decode it is
    reported as a damaged file rather than a crash. A file that decodes is then checked against
    the SHA-256 recorded in its folder's ``checksums.json`` (:func:`verify_checksum`): a flipped
    bit inside tensor bytes decodes fine, and only the digest catches it.

    Raises
    ------
    RunError
        Missing, truncated, a file whose pickle holds anything beyond tensors and plain
        containers (which could run code), or one whose bytes changed since cnnlstm wrote it;
        the message says which.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing")
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise RunError(f"{path} is unreadable ({exc.strerror or exc})") from exc
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of damaged files
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        foreign = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if foreign:  # the pickle asks for a function or class: what a code-running payload does
            raise RunError(f"{path}: refused to load: it asks for {foreign[1]}, not just tensors and plain "
                           "data (a crafted or foreign file; cnnlstm never unpickles code)") from exc
        raise RunError(f"{path}: damaged or not a checkpoint ({_unpickling_reason(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways (KeyError, IndexError...)
        raise RunError(f"{path}: damaged or not a checkpoint ({_first_sentence(exc)})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise RunError(f"{path}: not a cnnlstm checkpoint")
    verify_checksum(path, payload)
    return state


def _unpickling_reason(exc: Exception) -> str:
    """The one informative line of torch's long weights-only error (e.g. "Unsupported operand 149")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            rest = line.split("WeightsUnpickler error", 1)[1].strip(" :")
            return rest or (lines[i + 1] if i + 1 < len(lines) else "unsupported pickle data")
    return _first_sentence(exc)


def _first_sentence(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- checksums


def read_checksums(folder: str | Path) -> dict | None:
    """``folder/checksums.json`` as ``{file name: {"sha256": hex, "previous": hex?}}``; None if absent.

    Raises
    ------
    RunError
        The file exists but is not such a table.
    """
    path = Path(folder) / CHECKSUMS
    if not path.exists():
        return None
    table = read_json(path)
    if not isinstance(table, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in table.values()):
        raise RunError(f"{path} is damaged (not a table of SHA-256 digests); delete it to load the "
                       "checkpoints of this folder unverified")
    return table


def record_checksum(path: str | Path, payload: bytes) -> None:
    """Record ``payload``'s SHA-256 for ``path`` in ``checksums.json``, before ``path`` is replaced.

    The entry keeps, as ``previous``, the digest of the file now at ``path`` when that file is
    whole (it matches its own entry, or the folder has no entry for it yet): a crash after this
    write but before the replace leaves that file in place, and it must still load. A file that
    already fails its digest is never carried over.
    """
    path = Path(path)
    try:
        table = read_checksums(path.parent) or {}
    except RunError as exc:  # rewritten now; the other files' digests are lost with it
        log.warning("%s; writing a new one", exc)
        table = {}
    entry = {"sha256": sha256_hex(payload)}
    old = table.get(path.name)
    if path.is_file():
        on_disk = sha256_hex(path.read_bytes())
        if old is None or on_disk in (old.get("sha256"), old.get("previous")):
            entry["previous"] = on_disk
    table[path.name] = entry
    write_json(path.parent / CHECKSUMS, table)


def verify_checksum(path: str | Path, payload: bytes) -> None:
    """Check ``payload`` (the bytes of ``path``) against the digest recorded for it.

    A file with no recorded digest (its folder's ``checksums.json`` was deleted, as the message
    for a damaged one suggests, or the file was copied out of its run folder) loads with a
    logged warning.

    Raises
    ------
    RunError
        ``"<path> is damaged: SHA-256 mismatch"``: the bytes changed since cnnlstm wrote them.
    """
    path = Path(path)
    entry = (read_checksums(path.parent) or {}).get(path.name)
    if entry is None:
        log.warning("%s has no recorded SHA-256 (its checksums.json was deleted, or it was copied out of "
                    "its run folder); loading it unverified", path)
        return
    digest = sha256_hex(payload)
    if digest not in (entry["sha256"], entry.get("previous")):
        raise RunError(f"{path} is damaged: SHA-256 mismatch (its bytes changed after cnnlstm wrote them; "
                       f"recorded {entry['sha256'][:12]}..., found {digest[:12]}...)")


# --------------------------------------------------------------------------- reading runs

DATASET_FILE = "dataset.json"  # what a run trained on: Dataset.describe(), written just after config.json
DATASET_KEYS = ("name", "classes", "channels", "image_size", "norm")  # what reading a trained run needs of it


def read_run_dataset(run_dir: str | Path) -> dict | None:
    """A run's ``dataset.json`` (spec, checksum, classes, channels, size, normalisation), or None
    while the folder has none yet.

    Training writes it just after ``config.json``; a second data-parallel process may look
    before the first has written it. A trained run is read with :func:`load_run_dataset`.

    Raises
    ------
    RunError
        The file exists but is not a JSON object.
    """
    path = Path(run_dir) / DATASET_FILE
    if not path.is_file():
        return None
    desc = read_json(path)
    if not isinstance(desc, dict):
        raise RunError(f"{path}: not a dataset description")
    return desc


def load_run_dataset(run_dir: str | Path) -> dict:
    """A trained run's ``dataset.json``: every run folder records the data it trained on.

    Raises
    ------
    RunError
        The file is missing, is not a JSON object, or lacks one of :data:`DATASET_KEYS`.
    """
    desc = read_run_dataset(run_dir)
    if desc is None:
        raise RunError(f"{run_dir}: {DATASET_FILE} is missing (it records what the run trained on); "
                       "train the run again")
    missing = [key for key in DATASET_KEYS if key not in desc]
    if missing:
        raise RunError(f"{Path(run_dir) / DATASET_FILE}: not a dataset description (no {', '.join(missing)})")
    return desc


MODEL_FILE = "model_file.json"  # a user's model: the file that defined it and its SHA-256 (built-in: absent)


def record_model_source(run_dir: str | Path, cfg: "TrainConfig") -> None:
    """Write ``model_file.json`` for a run whose model comes from a user's file or module."""
    if cfg.model_file:
        from cnnlstm.models.user import load_model_source

        write_json(Path(run_dir) / MODEL_FILE, load_model_source(cfg.model_file).to_dict())


def check_model_source(run_dir: str | Path, cfg: "TrainConfig") -> None:
    """Import the source of a run's model, after checking it is the very file the run trained with.

    Raises
    ------
    RunError
        The record is missing, or the file is gone or has changed since (its weights would load
        into another model, or not at all).
    """
    if not cfg.model_file:
        return
    run_dir = Path(run_dir)
    record_path = run_dir / MODEL_FILE
    if not record_path.is_file():
        raise RunError(f"{run_dir}: its model {cfg.model!r} comes from {cfg.model_file}, but {MODEL_FILE} "
                       "(which file and version) is missing")
    record = read_json(record_path)
    path = Path(record["path"])
    if not path.is_file():
        raise RunError(f"{run_dir}: {path}, which defined its model {cfg.model!r}, is gone; restore it to use "
                       "this run")
    now = sha256_hex(path.read_bytes())
    if now != record["sha256"]:
        raise RunError(f"{run_dir}: {path}, which defined its model {cfg.model!r}, has changed since the run "
                       f"trained (SHA-256 {record['sha256'][:12]}... then, {now[:12]}... now); restore that "
                       "version, or train again")
    from cnnlstm.models.user import load_model_source

    source = load_model_source(cfg.model_file)
    if (source.path, source.sha256) != (str(path), record["sha256"]):  # a module found elsewhere now
        raise RunError(f"{run_dir}: its model {cfg.model!r} was defined by {path}, but {cfg.model_file} now "
                       f"imports from {source.path}; put the run's version first on the Python path")


def run_image_shape(run_dir: str | Path) -> tuple[int, int]:
    """``(image_size, channels)`` a run's model reads, from its ``dataset.json``.

    Raises
    ------
    RunError
        As :func:`load_run_dataset`.
    """
    desc = load_run_dataset(run_dir)
    return int(desc["image_size"]), int(desc["channels"])


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The validated ``config.json`` of a run folder (a user's model file imported, checked unchanged).

    Raises
    ------
    RunError
        No such folder, no ``config.json`` in it, or one that is not a valid config (the message
        names the key).
    """
    from cnnlstm.config import TrainConfig, from_dict

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir}: not a run folder (config.json is missing)")
    try:
        cfg = from_dict(TrainConfig, read_json(run_dir / "config.json"), where=f"{run_dir}/config.json")
    except ConfigError as exc:
        raise RunError(str(exc)) from exc
    check_model_source(run_dir, cfg)
    return cfg


def weights_path(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint to evaluate: ``best.pt`` or ``checkpoint.pt`` (``which`` = best | last)."""
    run_dir = Path(run_dir)
    path = run_dir / ("best.pt" if which == "best" else "checkpoint.pt")
    if not path.exists():
        hint = " (the run was interrupted before its first epoch ended; resume it with cnnlstm train --resume)"
        raise RunError(f"{run_dir}: {path.name} is missing{hint}")
    return path


def load_run_weights(model: torch.nn.Module, run_dir: str | Path, which: str = "best",
                     device: Any = "cpu") -> dict:
    """Load a run's ``best.pt`` (``which="best"``) or ``checkpoint.pt`` into ``model``; return the checkpoint.

    Raises
    ------
    RunError
        The file is missing or damaged, or its weights do not fit the model of ``config.json``.
    """
    ckpt = load_checkpoint(weights_path(run_dir, which), map_location=device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise RunError(f"{run_dir}: checkpoint does not match its config.json ({str(exc).splitlines()[0]})") from exc
    return ckpt


def load_run_model(run_dir: str | Path, which: str = "best", device: Any = "cpu", *,
                   image_size: int | None = None, in_channels: int | None = None
                   ) -> tuple[torch.nn.Module, TrainConfig]:
    """A trained run's model with its weights, in eval mode on ``device``, and its config.

    The model is built with :func:`cnnlstm.models.create_model` and then overwritten by the
    checkpoint, so torch's global RNG is left alone (training's ``build_model`` reseeds it, which
    inference must not do). The number of classes is read from the checkpoint's head.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``cnnlstm train``.
    which : {"best", "last"}
        ``best.pt`` (best validation epoch) or ``checkpoint.pt`` (last epoch).
    device : str or torch.device
    image_size, in_channels : int, optional
        Side and channels of the images the run trained on; default what its ``dataset.json``
        says.

    Returns
    -------
    model : torch.nn.Module
    config : TrainConfig

    Raises
    ------
    RunError
        Not a run folder, ``dataset.json`` missing, weights missing or damaged, or weights that do
        not fit the config.
    """
    from cnnlstm.models import create_model

    cfg = load_run_config(run_dir)
    size, channels = run_image_shape(run_dir)
    path = weights_path(run_dir, which)
    state = load_checkpoint(path, map_location=device)["model"]
    weight = state.get("head.weight")  # (num_classes, feature_dim)
    if weight is None or weight.ndim != 2:
        raise RunError(f"{path}: no classifier head (head.weight) in the checkpoint")
    model = create_model(cfg.model, num_classes=int(weight.shape[0]), image_size=image_size or size,
                         in_channels=in_channels or channels, **cfg.model_args)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RunError(f"{path}: weights do not fit {cfg.model} as configured in config.json "
                       f"({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval(), cfg
