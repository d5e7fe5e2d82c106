#!/usr/bin/env bash
# Fill .device-carry/ with what benchmarks/gpu_check.sh needs on a GPU machine that can fetch
# nothing: the four Fashion-MNIST .gz files and the wheels of the project's dependencies that such
# a machine's stock Python (3.12, with a CUDA build of torch, numpy, scipy, scikit-learn,
# matplotlib, pillow, rich, pyyaml, tqdm, pytest ...) lacks.
#
#   bash benchmarks/gpu_carry.sh            # or: make gpu-carry
#
# Layout (the folder is git-ignored; take it along with the working tree):
#   .device-carry/data/*.gz          the dataset, used through --data-dir
#   .device-carry/wheels/*.whl       runtime wheels, installed with --no-index --no-deps
#   .device-carry/build/*.whl        setuptools, for the offline build of `pip install -e .`
#
# Versions are pinned to those of this checkout's .venv (the versions the test suite ran with), for
# CPython 3.12 on x86-64 manylinux. The whole folder must stay under 64 MiB with the working tree.
#
# Environment: PYTHON (the interpreter whose versions are pinned; default .venv/bin/python),
# DATA_SRC (folder with the four .gz files; default /usr/share/datasets/fashion-mnist),
# CARRY (the folder to fill; default .device-carry), PY_VERSION (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DATA_SRC=${DATA_SRC:-/usr/share/datasets/fashion-mnist}
CARRY=${CARRY:-.device-carry}
PY_VERSION=${PY_VERSION:-3.12}
LIMIT_MIB=${LIMIT_MIB:-60}  # leaves room for the tracked files under the 64 MiB transfer limit

# Missing on the GPU machine's image (its package list names none of openTSNE, optuna, captum), plus
# the pure dependencies optuna brings that the image lacks too (alembic -> SQLAlchemy, Mako;
# colorlog). tomli is only needed below Python 3.11.
RUNTIME="openTSNE optuna captum alembic SQLAlchemy Mako colorlog"
BUILD="setuptools"  # pyproject.toml's license = "MIT" needs setuptools >= 77
# What the image already holds, of what the project and the wheels above need (from the GPU
# machine's package list); a requirement that is neither here nor carried stops this script.
IMAGE_HAS="torch numpy scipy scikit-learn matplotlib pillow rich pyyaml tqdm packaging markupsafe
typing-extensions"

FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

version_of() {  # the installed version of distribution $1 in $PYTHON's environment
    "$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"
}

download() {  # download pinned wheels of the packages in $2.. into folder $1
    local dest=$1; shift
    local specs=()
    for name in "$@"; do specs+=("$name==$(version_of "$name")"); done
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: \
        --python-version "$PY_VERSION" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$dest" "${specs[@]}"
}

mkdir -p "$CARRY/data" "$CARRY/wheels" "$CARRY/build"
for f in $FILES; do
    test -f "$DATA_SRC/$f" || { echo "gpu_carry: $DATA_SRC/$f is missing (set DATA_SRC)" >&2; exit 2; }
    cp -u "$DATA_SRC/$f" "$CARRY/data/$f"
done
rm -f "$CARRY"/wheels/*.whl "$CARRY"/build/*.whl  # one version of each: two would stop the install
# shellcheck disable=SC2086  # word splitting of the package lists is intended
download "$CARRY/wheels" $RUNTIME
# shellcheck disable=SC2086
download "$CARRY/build" $BUILD

# Every requirement of the project and of each carried wheel must be on the image or carried.
# (A dry run here cannot install cp312 wheels into another Python, so check the metadata instead.)
"$PYTHON" - "$CARRY/wheels" "$PY_VERSION" "$IMAGE_HAS" <<'PY'
import sys, tomllib, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

folder, py, image = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split()
env = {"python_version": py, "python_full_version": py + ".0", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
carried, needs = {}, {}
for wheel in sorted(folder.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        bad = z.testzip()
        if bad:
            sys.exit(f"gpu_carry: {wheel.name}: corrupt member {bad}")
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    carried[canonicalize_name(wheel.name.split("-")[0])] = wheel.name
    needs[wheel.name] = [ln.split(":", 1)[1] for ln in lines if ln.startswith("Requires-Dist:")]
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
needs["pyproject.toml"] = project
have = {canonicalize_name(n) for n in image} | set(carried)
missing = []
for who, reqs in needs.items():
    for text in reqs:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            if canonicalize_name(req.name) not in have:
                missing.append(f"{req.name} (needed by {who})")
for name in carried.values():
    print("  " + name)
if missing:
    sys.exit("gpu_carry: neither on the image nor carried: " + ", ".join(missing))
PY
size_kib=$(du -sk "$CARRY" | cut -f1)
echo "gpu_carry: $CARRY holds $((size_kib / 1024)) MiB ($(find "$CARRY" -type f | wc -l) files)"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "gpu_carry: $CARRY is over $LIMIT_MIB MiB; the device transfer limit is 64 MiB in all" >&2
    exit 1
fi
