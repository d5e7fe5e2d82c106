"""``cnnlstm predict``: image loading and Fashion-MNIST preprocessing, batched prediction, the CLI."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlstm.cli import main
from cnnlstm.config import TrainConfig
from cnnlstm.data import PIXEL_STD, load_dataset, to_tensor
from cnnlstm.deploy import images as I
from cnnlstm.deploy.predict import load_predictor, predict_files
from cnnlstm.errors import ImageError, RunError
from cnnlstm.measure.inference import predict_probs
from cnnlstm.study.experiment import evaluate_run, train_run

from conftest import REAL_DATA_DIR, synthetic_arrays, write_dataset

ARRAYS = synthetic_arrays()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A Model I run trained 2 epochs on the tiny synthetic set, with metrics.json (no figures)."""
    root = tmp_path_factory.mktemp("predict")
    ds = load_dataset(write_dataset(root / "data", ARRAYS), verify=False, use_cache=False)
    cfg = TrainConfig(model="model1", epochs=2, batch_size=32, val_size=40, verify=False, device="cpu")
    train_run(cfg, root / "run", ds, evaluate=False)
    evaluate_run(root / "run", ds, figures=False)  # metrics.json carries the class names
    return root / "run"


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_predictor(run_dir)


def big_on_white(raw: np.ndarray, scale: int = 10, margin=(40, 60), rgb: bool = True) -> Image.Image:
    """A dataset image as a catalogue photo: negated (dark object on white), upscaled, with margins."""
    inv = Image.fromarray(255 - raw).resize((raw.shape[1] * scale, raw.shape[0] * scale), Image.Resampling.NEAREST)
    canvas = Image.new("L", (inv.width + 2 * margin[0], inv.height + 2 * margin[1]), 255)
    canvas.paste(inv, margin)
    return canvas.convert("RGB") if rgb else canvas


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> str:
    img.save(path, fmt, **kw)
    return str(path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` with almost no pixel data (a cheap bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- preprocessing rule


@pytest.mark.parametrize("invert", [False, True])
def test_dataset_sized_images_pass_through_exactly(tmp_path, invert):
    """A raw 28x28 image (or its negative) comes back bit-identical: no trim, no resize."""
    for i, raw in enumerate(ARRAYS["test_images"][:10]):
        pixels = 255 - raw if invert else raw
        assert np.array_equal(I.load_image(save(Image.fromarray(pixels), tmp_path / f"{i}.png")), raw)


def test_light_background_is_negated_trimmed_resized_and_centred():
    """A dark 40x160 bar on white becomes a light 7x28 bar centred on black (aspect kept)."""
    photo = np.full((300, 400), 255, np.float32)
    photo[100:140, 120:280] = 0  # 40 rows x 160 cols of object
    out = I.fashion_preprocess(photo)
    rows, cols = np.nonzero(out > 127)
    assert (cols.min(), cols.max()) == (0, 27)
    assert rows.max() - rows.min() + 1 == 7  # 40 * 28 / 160
    assert (rows.min(), 27 - rows.max()) == (11, 10)  # odd margin: the extra pixel goes on top
    assert out[0].max() == 0 and out[27].max() == 0  # background black


def test_dark_background_is_kept_and_its_level_subtracted():
    photo = np.full((100, 80), 30, np.float32)  # a grey (dark) background
    photo[20:80, 30:50] = 230
    out = I.fashion_preprocess(photo)
    assert out[0, 0] == 0 and out[14, 14] > 190  # background -> 0; object 230 - 30 = 200
    rows, cols = np.nonzero(out > 100)
    assert rows.max() - rows.min() + 1 == 28 and cols.max() - cols.min() + 1 in (9, 10)


def test_blank_and_tiny_images_are_refused(tmp_path):
    with pytest.raises(ImageError, match="no object"):
        I.load_image(save(Image.new("RGB", (100, 100), "white"), tmp_path / "blank.png"))
    with pytest.raises(ImageError, match=r"too small \(1x1"):
        I.load_image(save(Image.new("L", (1, 1)), tmp_path / "one.png"))
    assert I.load_image(save(Image.fromarray(np.eye(8, dtype=np.uint8) * 255), tmp_path / "8.png")).shape == (28, 28)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "1", "CMYK", "I;16", "I", "F", "YCbCr"])
def test_every_pillow_mode_gives_the_same_picture(tmp_path, mode):
    """Modes differ in encoding, not content: each gives (nearly) the 8-bit grayscale result."""
    base = big_on_white(ARRAYS["test_images"][3], scale=4, rgb=False)
    if mode == "1":  # 1-bit holds only black and white: compare with the thresholded picture
        base = base.point(lambda v: 255 if v > 127 else 0)
    expected = I.fashion_preprocess(np.asarray(base))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    elif mode == "F":
        img = Image.fromarray(np.asarray(base).astype(np.float32) / 255.0, "F")
    else:
        img = base.convert(mode)
    fmt = {"CMYK": "TIFF", "I": "TIFF", "F": "TIFF", "LA": "TIFF", "YCbCr": "JPEG"}.get(mode, "PNG")
    out = I.load_image(save(img, tmp_path / f"x.{fmt.lower()}", fmt))
    tolerance = 0.12 if fmt == "JPEG" else 0.02  # JPEG is lossy; the others differ by rounding only
    assert np.abs(out.astype(float) - expected).mean() / 255 / PIXEL_STD < tolerance


def test_transparent_background_counts_as_white(tmp_path):
    cutout = Image.new("RGBA", (120, 90), (0, 0, 0, 0))  # fully transparent (black underneath)
    cutout.paste((20, 20, 20, 255), (30, 10, 90, 80))
    out = I.load_image(save(cutout, tmp_path / "cutout.png"))
    assert out[0, 0] == 0 and out[14, 14] > 200  # composited on white, then negated


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 is seen upright (tall object)."""
    stored = np.full((60, 200), 255, np.uint8)
    stored[20:40, 10:190] = 0  # wide as stored; tall once rotated by the viewer
    exif = Image.Exif()
    exif[0x0112] = 6
    out = I.load_image(save(Image.fromarray(stored), tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95))
    rows, cols = np.nonzero(out > 127)
    assert rows.max() - rows.min() > 20 and cols.max() - cols.min() < 8


def test_npy_layouts_and_value_rules(tmp_path):
    raw = ARRAYS["test_images"][5]
    good = {
        "u8.npy": raw, "chw.npy": raw[None], "hwc.npy": raw[..., None],
        "rgb.npy": np.repeat(raw[..., None], 3, axis=2), "unit.npy": raw.astype(np.float64) / 255.0,
        "f255.npy": raw.astype(np.float32), "i64.npy": raw.astype(np.int64),
        "fortran.npy": np.asfortranarray(raw),
    }
    for name, arr in good.items():
        np.save(tmp_path / name, arr)
        assert np.array_equal(I.load_image(tmp_path / name), raw), name
    bad = {
        "obj.npy": (np.array([1, "a"], dtype=object), "object"),
        "neg.npy": (raw.astype(np.float32) / 255 - 0.5, "normalised"),
        "big.npy": (raw.astype(np.int32) * 4, "0..255"),
        "nan.npy": (np.full((28, 28), np.nan), "NaN"),
        "4d.npy": (raw[None, None], "not an image"),
        "str.npy": (np.array(["ab"] * 4), "not supported"),
    }
    for name, (arr, words) in bad.items():
        np.save(tmp_path / name, arr, allow_pickle=True)
        with pytest.raises(ImageError, match=words):
            I.load_image(tmp_path / name)
    (tmp_path / "fake.npy").write_bytes(b"not numpy")
    with pytest.raises(ImageError, match="not a NumPy"):
        I.load_image(tmp_path / "fake.npy")


def test_size_limits_are_checked_before_decoding(tmp_path):
    """Header-only bombs and real over-limit images are refused; Pillow's global limit untouched."""
    before = Image.MAX_IMAGE_PIXELS
    (tmp_path / "claims.png").write_bytes(png_header_only(20000, 20000))
    with pytest.raises(ImageError, match="claims.png.*(too large|decompression bomb)"):
        I.load_image(tmp_path / "claims.png")
    (tmp_path / "claims60mp.png").write_bytes(png_header_only(10000, 6000))  # under Pillow's own limit
    with pytest.raises(ImageError, match="too large"):
        I.load_image(tmp_path / "claims60mp.png")
    Image.new("1", (8000, 8000)).save(tmp_path / "blank64mp.png")  # a real, decodable 64 MP PNG
    with pytest.raises(ImageError, match="too large"):
        I.load_image(tmp_path / "blank64mp.png")
    assert Image.MAX_IMAGE_PIXELS == before


# --------------------------------------------------------------------------- prediction


def test_white_background_photo_gets_the_raw_images_prediction(tmp_path, loaded):
    """The same garment as a big RGB catalogue photo and as the raw image: same class, close pixels."""
    raws = ARRAYS["test_images"][:12]
    raw_paths = [save(Image.fromarray(r), tmp_path / f"raw{i}.png") for i, r in enumerate(raws)]
    big_paths = [save(big_on_white(r), tmp_path / f"big{i}.png") for i, r in enumerate(raws)]
    by_raw = [r.top for r in predict_files(loaded, raw_paths, topk=1)]
    by_big = [r.top for r in predict_files(loaded, big_paths, topk=1)]
    assert [t[0]["label"] for t in by_big] == [t[0]["label"] for t in by_raw]
    direct = predict_probs(loaded.model, to_tensor(raws, norm=loaded.norm)).argmax(1)
    assert [t[0]["label"] for t in by_raw] == direct.tolist()
    for raw, path in zip(raws, big_paths):  # the white margin is the background: trimmed away exactly
        assert np.abs(I.load_image(path).astype(float) - raw).mean() / 255 / PIXEL_STD < 0.08  # measured 0.047


@pytest.mark.realdata
def test_real_test_images_survive_the_catalogue_photo_round_trip(tmp_path):
    """Real Fashion-MNIST test images, negated, upscaled 10x onto a white 360x400 RGB canvas,
    come back close to the raw image, and a briefly trained Model I mostly agrees on both."""
    ds = load_dataset(REAL_DATA_DIR, download=False)
    cfg = TrainConfig(model="model1", epochs=1, batch_size=64, val_size=500, limit_train=4000, lr=3e-3,
                      device="cpu")
    train_run(cfg, tmp_path / "run", ds, evaluate=False)
    run = load_predictor(tmp_path / "run")
    raws, diffs, paths = ds.test_images[:200], [], []
    for i, raw in enumerate(raws):
        paths.append(save(big_on_white(raw), tmp_path / f"{i}.png"))
        diffs.append(np.abs(I.load_image(paths[-1]).astype(float) - raw).mean() / 255 / PIXEL_STD)
    # measured: mean 0.05 (90th percentile 0.07); centring a pixel off gives 0.16, no trim > 0.3
    assert np.mean(diffs) < 0.08 and np.percentile(diffs, 90) < 0.12
    by_raw = predict_probs(run.model, to_tensor(raws, norm=run.norm)).argmax(1)
    by_big = np.array([r.top[0]["label"] for r in predict_files(run, paths, topk=1)])
    assert (by_big == by_raw).mean() >= 0.9  # measured 0.95 with a ~75% model


def test_batches_and_failures_keep_input_order(tmp_path, loaded):
    paths = [save(Image.fromarray(r), tmp_path / f"{i}.png") for i, r in enumerate(ARRAYS["test_images"][:5])]
    paths.insert(2, str(tmp_path / "missing.png"))
    one_batch = list(predict_files(loaded, paths, topk=10, batch_size=512))
    small = list(predict_files(loaded, paths, topk=10, batch_size=2))
    assert [r.file for r in small] == paths and small[2].error and "missing.png" in small[2].error
    for a, b in zip(one_batch, small):
        assert (a.error is None) == (b.error is None)
        if a.top:
            assert [t["label"] for t in a.top] == [t["label"] for t in b.top]
            np.testing.assert_allclose([t["prob"] for t in a.top], [t["prob"] for t in b.top], atol=1e-6)


def test_class_names_come_from_the_runs_dataset_json(run_dir, tmp_path):
    desc = json.loads((run_dir / "dataset.json").read_text())
    assert load_predictor(run_dir).classes == tuple(desc["classes"])
    copy = tmp_path / "renamed"
    shutil.copytree(run_dir, copy)
    desc["classes"] = [f"thing{i}" for i in range(10)]
    (copy / "dataset.json").write_text(json.dumps(desc))
    assert load_predictor(copy).classes[3] == "thing3"
    desc["classes"] = desc["classes"][:3]
    (copy / "dataset.json").write_text(json.dumps(desc))
    with pytest.raises(RunError, match="names 3 classes but the model in best.pt has 10 outputs"):
        load_predictor(copy)


def test_run_errors_are_run_errors(tmp_path, run_dir):
    with pytest.raises(RunError, match="no such run folder"):
        load_predictor(tmp_path / "nope")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((run_dir / "config.json").read_text())
    with pytest.raises(RunError, match="dataset.json is missing"):
        load_predictor(partial)
    desc = json.loads((run_dir / "dataset.json").read_text())
    (partial / "dataset.json").write_text(json.dumps({k: v for k, v in desc.items() if k != "norm"}))
    with pytest.raises(RunError, match=r"dataset.json: not a dataset description \(no norm\)"):
        load_predictor(partial)
    (partial / "dataset.json").write_text(json.dumps(desc))
    with pytest.raises(RunError, match="best.pt is missing"):
        load_predictor(partial)
    config = json.loads((run_dir / "config.json").read_text())
    config["model"] = "model2"  # weights of Model I under a Model II config
    (partial / "config.json").write_text(json.dumps(config))
    (partial / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    with pytest.raises(RunError, match="do not fit model2"):
        load_predictor(partial)


def test_a_run_folder_without_dataset_json_is_one_line_for_every_command(tmp_path, run_dir, capsys):
    """No run is read as Fashion-MNIST by default: without dataset.json predict, export and
    evaluate each refuse it in one line, exit 2."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "dataset.json").unlink()
    img = save(Image.fromarray(ARRAYS["test_images"][0]), tmp_path / "a.png")
    data = write_dataset(tmp_path / "data", ARRAYS)
    for argv in (["predict", run, img, "-q"], ["export", run, "--format", "torchscript", "-q"],
                 ["evaluate", run, "--data-dir", data, "--no-verify", "-q"]):
        assert main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"cnnlstm {argv[0]}: error: "), err
        assert f"{run}: dataset.json is missing" in err[0], err


# --------------------------------------------------------------------------- CLI


def bad_files(folder: Path) -> dict[str, str]:
    """Broken inputs -> words their one-line error must contain."""
    photo = io.BytesIO()
    big_on_white(ARRAYS["test_images"][0]).save(photo, "JPEG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("hello, not a picture\n")
    (folder / "truncated.jpg").write_bytes(photo.getvalue()[: len(photo.getvalue()) // 2])
    Image.new("L", (1, 1)).save(folder / "dot.png")
    (folder / "bomb.png").write_bytes(png_header_only(20000, 20000))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {"empty.png": "empty", "text.png": "not an image", "truncated.jpg": "truncated",
            "dot.png": "too small", "bomb.png": "too large|bomb", "objects.npy": "object",
            "missing.png": "cannot read"}


def test_cli_reports_each_bad_file_on_one_line_and_predicts_the_rest(tmp_path, run_dir, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    expected = bad_files(folder)
    good = [save(Image.fromarray(ARRAYS["test_images"][i]), folder / f"good {i}.png") for i in range(2)]
    args = [str(folder / name) for name in expected]
    rc = main(["predict", str(run_dir), good[0], *args, good[1], "--json", "-q"])
    out, err = capsys.readouterr()
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == len(expected)
    for line, (name, words) in zip(lines, expected.items()):
        assert line.startswith("cnnlstm predict: error: ") and name in line
        assert any(w in line for w in words.split("|")), line
    assert [json.loads(line)["file"] for line in out.splitlines()] == good


def test_cli_json_output_parses(tmp_path, run_dir, capsys):
    paths = [save(Image.fromarray(ARRAYS["test_images"][i]), tmp_path / f"{i}.png") for i in range(3)]
    np.save(tmp_path / "3.npy", ARRAYS["test_images"][3])
    assert main(["predict", str(run_dir), *paths, str(tmp_path / "3.npy"), "--json", "--topk", "4", "-q"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [*paths, str(tmp_path / "3.npy")]
    for row in rows:
        assert set(row) == {"file", "top"} and len(row["top"]) == 4
        probs = [t["prob"] for t in row["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        assert all(t["name"] == f"class {t['label']}" for t in row["top"])
    main(["predict", str(run_dir), paths[0], "--json", "--topk", "99", "-q"])
    assert len(json.loads(capsys.readouterr().out)["top"]) == 10  # capped at the number of classes


def test_cli_table_handles_spaces_non_ascii_and_folders(tmp_path, run_dir, capsys):
    folder = tmp_path / "Ordner mit Leerzeichen ü"
    folder.mkdir()
    names = ["größe 1.png", "tab\tname.png", "日本.jpg", os.fsdecode(b"latin1 caf\xe9.png")]
    for i, name in enumerate(names):
        img = Image.fromarray(ARRAYS["test_images"][i])
        img.save(folder / name, "JPEG" if name.endswith(".jpg") else "PNG")
    (folder / "notes.txt").write_text("skipped: not an image extension")
    assert main(["predict", str(run_dir), str(folder), "--topk", "2"]) == 0
    out = capsys.readouterr().out
    assert "größe 1.png" in out and "日本.jpg" in out and "tab\\x09name.png" in out
    assert "latin1 caf\\xe9.png" in out  # a name that is not UTF-8, shown escaped
    assert "notes.txt" not in out and "#2" in out


def test_cli_usage_errors_exit_2(tmp_path, run_dir, capsys):
    img = save(Image.fromarray(ARRAYS["test_images"][0]), tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "no-run"), img]) == 2
    assert main(["predict", str(run_dir), img, "--device", "tpu"]) == 2
    if not torch.cuda.is_available():
        assert main(["predict", str(run_dir), img, "--device", "cuda"]) == 2
    assert main(["predict", str(run_dir), img, "--checkpoint", "last", "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 2 and all(line.startswith("cnnlstm predict: error:") for line in err)
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(run_dir), img, "--topk", "0"])
    assert exc.value.code == 2


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "examples:" in capsys.readouterr().out


# --------------------------------------------------------------------------- layering

TRAINING_STACK = ("cnnlstm.training.loop", "cnnlstm.study.experiment", "cnnlstm.training.distributed")

LEAN_IMPORTS = r'''
import json, sys
RUN, IMAGE, OUT, *STACK = sys.argv[1:]
import cnnlstm.deploy.predict, cnnlstm.deploy.export, cnnlstm.cli.predict_cmd, cnnlstm.cli.export_cmd
after_import = [m for m in STACK if m in sys.modules]
from cnnlstm.cli import main
codes = [main(["predict", RUN, IMAGE, "--json", "--quiet"]),
         main(["export", RUN, "--format", "torchscript", "--out", OUT, "--quiet"])]
print(json.dumps({"after_import": after_import, "codes": codes,
                  "after_use": [m for m in STACK if m in sys.modules]}))
'''


def test_predict_and_export_never_load_the_training_stack(run_dir, tmp_path):
    """Reading a run for inference needs neither training, the experiment glue nor DDP: in a fresh
    interpreter, importing predict and export, and then running both commands, loads none of them."""
    import subprocess
    import sys

    image = save(Image.fromarray(ARRAYS["test_images"][0]), tmp_path / "a.png")
    argv = [str(run_dir), image, str(tmp_path / "m.pt"), *TRAINING_STACK]
    proc = subprocess.run([sys.executable, "-c", LEAN_IMPORTS, *argv], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"after_import": [], "codes": [0, 0], "after_use": []}, result
