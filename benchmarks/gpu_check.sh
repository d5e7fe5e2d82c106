#!/usr/bin/env bash
# One-shot check of the GPU path on a CUDA machine that can fetch nothing, within one time budget.
#
#   bash benchmarks/gpu_carry.sh                      # here, once: fill .device-carry/ (data + wheels)
#   bash benchmarks/gpu_check.sh                      # there, from the repo root, with .device-carry/
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh      # here: every step on the CPU with tiny sizes
#   bash benchmarks/gpu_check.sh --dry-run            # the same
#
# Steps, in priority order; each is time-limited with `timeout`, logs to $OUT/<step>.log, and a
# failure does not stop the next one:
#   env      card, driver, CUDA, cuDNN, torch and package versions
#   install  the carried wheels (--no-index --no-deps, only those missing) and the project itself
#            (`pip install --no-deps -e .`, built offline with the carried setuptools)
#   tests    pytest -m cuda tests/test_gpu.py tests/data/test_augment.py (JUnit XML in the bundle)
#   bench    benchmarks/gpu.py: images/s, training seconds to 92% / 94.5% test and validation accuracy
#   recipe   `cnnlstm train cnn_lstm --preset gpu` for 3 seeds, each then `cnnlstm evaluate`d
#   paper    `cnnlstm reproduce --preset paper`, in whatever time is left (resumable: a second
#            command `GPU_CHECK_STEPS=paper bash benchmarks/gpu_check.sh` on the same machine
#            continues the study, and the summary adds up the paper step's time over both)
# After every step $OUT/summary.md (the figures) and $OUT/bundle.tar.gz (JUnit XML, benchmark JSON,
# every run's config.json / history.csv / metrics.json, the study's report.md; no weights, no
# images) are rewritten, so a run cut short still returns what it finished. $OUT holds at most
# 8 files: the six step logs, summary.md and bundle.tar.gz.
#
# Environment (all optional):
#   OUT                 where results go (default ./gpu-out)
#   GPU_CHECK_DRY       1 = dry run: CPU, tiny sizes, nothing installed into the environment
#   GPU_CHECK_BUDGET    seconds for the whole check (default 540, so it fits one 600 s command;
#                       dry run 480)
#   GPU_CHECK_STEPS     the steps to run (default "env install tests bench recipe paper")
#   GPU_CHECK_SEEDS     recipe seeds (default "0 1 2"; dry run "0 1")
#   GPU_CHECK_CARRY     the carried folder (default .device-carry); GPU_CHECK_DATA its data folder
#   GPU_CHECK_WORK      scratch folder for runs (default /tmp/gpu-check). A run whose steps include
#                       env starts it afresh; a run of some steps only (e.g. GPU_CHECK_STEPS=paper)
#                       keeps the other steps' results, so its summary shows them all
#   GPU_CHECK_BENCH_ARGS  extra arguments of benchmarks/gpu.py (default "--presets fast": the CPU
#                       recipe's time to 92%; the recipe step gives the gpu preset's times to 92%/94.5%)
#   PYTHON              the interpreter (default python3; dry run: .venv/bin/python when present)
set -uo pipefail  # no -e: a failed step is recorded and the next one runs
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

DRY=${GPU_CHECK_DRY:-0}
for arg in "$@"; do
    case $arg in
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
[ "$DRY" = 0 ] || DRY=1

OUT=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
CARRY=${GPU_CHECK_CARRY:-$REPO/.device-carry}
DATA=${GPU_CHECK_DATA:-$CARRY/data}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || exit 2
STEPS=${GPU_CHECK_STEPS:-env install tests bench recipe paper}
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:---presets fast}
if [ "$DRY" = 1 ]; then
    BUDGET=${GPU_CHECK_BUDGET:-480}  # slack for a busy 2-core machine: it took 250-400 s
    SEEDS=${GPU_CHECK_SEEDS:-0 1}  # two seeds show the loop and the mean +- std
    PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$REPO/.venv/bin/python" || echo python3 )}
    DEV=cpu
else
    BUDGET=${GPU_CHECK_BUDGET:-540}
    SEEDS=${GPU_CHECK_SEEDS:-0 1 2}
    PY=${PYTHON:-python3}
    DEV=cuda
fi
SITE=$WORK/site  # carried wheels go here (--target), first on PYTHONPATH
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"  # works even if the editable install fails
# Set before any step, so a later command of some steps only (GPU_CHECK_STEPS=paper) still finds
# the wheels an earlier command installed. The dry run never imports the device's cp312 wheels.
[ "$DRY" = 1 ] || export PYTHONPATH="$SITE:$PYTHONPATH"
CNNLSTM=("$PY" -m cnnlstm)

# Shares of the budget (percent). CAP: at most this much for the step. KEEP: kept back by every
# earlier step for this one, so a hung test cannot starve the benchmark or the recipe. The paper
# study gets whatever is left; RESERVE seconds stay for the final summary and bundle.
declare -A CAP=([env]=6 [install]=12 [tests]=22 [bench]=37 [recipe]=100 [paper]=100)
declare -A KEEP=([env]=0 [install]=0 [tests]=0 [bench]=10 [recipe]=45 [paper]=0)
ORDER=(env install tests bench recipe paper)
RESERVE=15
START=$(date +%s)

log() { echo "[gpu_check $(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*"; }
now() { date +%s; }
left() { echo $(( BUDGET - ($(now) - START) )); }

# within DEADLINE CMD...: run CMD with `timeout` until the epoch second DEADLINE (rc 124 when cut).
within() {
    local deadline=$1; shift
    local secs=$(( deadline - $(now) ))
    if [ "$secs" -lt 2 ]; then echo "no time left for: $*"; return 124; fi
    timeout -k 10 "$secs" "$@"
}

# ---------------------------------------------------------------------------------------- steps
# Each step_* runs in this shell (so `install` can export PYTHONPATH) with its output in
# $OUT/<step>.log, and gets its deadline as $1.

step_env() {
    local deadline=$1
    echo "mode: $( [ "$DRY" = 1 ] && echo 'DRY RUN (CPU, tiny sizes)' || echo real )"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -srm); cores: $(nproc)"
    echo "python: $(command -v "$PY") ($("$PY" -V 2>&1))"
    if command -v nvidia-smi >/dev/null; then
        within "$deadline" nvidia-smi
        within "$deadline" nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm \
            --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    within "$deadline" "$PY" - "$WORK/env.json" <<'PY'
import json, platform, subprocess, sys
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                memory_gib=round(p.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
try:
    q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=30)
    info["driver"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else None
except (OSError, subprocess.TimeoutExpired):
    info["driver"] = None
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info, indent=2))
PY
    echo "--- pip list"
    within "$deadline" "$PY" -m pip list --disable-pip-version-check 2>/dev/null
}

step_install() {
    local deadline=$1 rc=0 w name todo=()
    if [ ! -d "$CARRY/wheels" ] || [ ! -d "$DATA" ]; then
        echo "missing $CARRY/wheels or $DATA: run benchmarks/gpu_carry.sh first and carry the folder"
        rc=1
    fi
    for w in "$CARRY"/wheels/*.whl; do
        [ -f "$w" ] || continue
        name=$(basename "$w" | cut -d- -f1)
        if [ "$DRY" = 0 ] && "$PY" -m pip show -q "$name" >/dev/null 2>&1; then
            echo "have $name $("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p');" \
                "not installing $(basename "$w")"
        else
            todo+=("$w")
        fi
    done
    if [ ${#todo[@]} -gt 0 ]; then
        local target=$SITE
        local tags=()
        if [ "$DRY" = 1 ]; then
            # Not into this environment: install the device's cp312 wheels into a scratch folder
            # that is never imported, which still proves they install offline.
            target=$WORK/site-dry
            tags=(--python-version 3.12 --implementation cp --only-binary=:all:
                  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64
                  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
        fi
        echo "installing into $target: ${todo[*]##*/}"
        within "$deadline" "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
            --no-compile --no-cache-dir --upgrade --target "$target" "${tags[@]}" "${todo[@]}" || rc=1
    fi
    if [ "$DRY" = 1 ]; then
        # The same offline build as `pip install -e .`, into a wheel, leaving the environment alone;
        # from a copy, since setuptools writes build/ and *.egg-info/ into the tree it builds.
        echo "building the project offline (pip wheel --no-index --find-links $CARRY/build)"
        rm -rf "$WORK/wheel" && mkdir -p "$WORK/wheel/tree"
        cp -r pyproject.toml README.md LICENSE src "$WORK/wheel/tree/"
        within "$deadline" "$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-index \
            --find-links "$CARRY/build" -w "$WORK/wheel" "$WORK/wheel/tree" || rc=1
        ls "$WORK/wheel"/*.whl
    else
        within "$deadline" "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index \
            --find-links "$CARRY/build" -e "$REPO" || { echo "editable install failed; using PYTHONPATH=src"; rc=1; }
    fi
    echo "PYTHONPATH=$PYTHONPATH"
    within "$deadline" "$PY" -c "
import cnnlstm, openTSNE, optuna, sqlalchemy, torch
print('cnnlstm', cnnlstm.__version__, 'from', cnnlstm.__file__)
print('openTSNE', openTSNE.__version__, '| optuna', optuna.__version__, '| sqlalchemy', sqlalchemy.__version__,
      '| torch', torch.__version__)" || rc=1
    within "$deadline" "$PY" -m cnnlstm data --data-dir "$DATA" --no-download || rc=1
    return $rc
}

step_tests() {
    local deadline=$1 per_test=()
    rm -f "$WORK/junit-cuda.xml"
    # pytest writes its JUnit XML at the end: a hung test must fail on its own (pytest-timeout)
    # rather than have the step killed with no counts at all.
    if "$PY" -c "import pytest_timeout" 2>/dev/null; then
        per_test=(--timeout=$(( (deadline - $(now)) / 3 )))
    fi
    within "$deadline" "$PY" -m pytest -m cuda tests/test_gpu.py tests/data/test_augment.py -p no:cacheprovider \
        -rA --junitxml="$WORK/junit-cuda.xml" "${per_test[@]}"
}

step_bench() {
    local deadline=$1
    rm -f "$WORK/bench.json"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of arguments
    if [ "$DRY" = 1 ]; then
        within "$deadline" "$PY" benchmarks/gpu.py --dry-run --json "$WORK/bench.json" $BENCH_ARGS
    else
        within "$deadline" "$PY" benchmarks/gpu.py --data-dir "$DATA" --json "$WORK/bench.json" $BENCH_ARGS
    fi
}

step_recipe() {
    local deadline=$1 rc=0 seeds=($SEEDS) i s dir t0 t1 train_rc eval_rc seed_deadline
    local extra=()
    [ "$DRY" = 0 ] || extra=(--epochs 1 --limit-train 256 --limit-test 256 --val-size 256 --threads 2)
    local fallback=()  # set once bf16 failed, for the seeds after it
    rm -rf "$WORK/recipe" && mkdir -p "$WORK/recipe"
    printf 'seed\ttrain_rc\ttrain_wall_s\teval_rc\teval_wall_s\tflags\n' > "$WORK/recipe/seeds.tsv"
    for i in "${!seeds[@]}"; do
        s=${seeds[$i]}
        dir=$WORK/recipe/cnn_lstm-gpu-s$s
        seed_deadline=$(( $(now) + (deadline - $(now)) / (${#seeds[@]} - i) ))
        log "seed $s: train (until +$(( seed_deadline - START ))s)"
        t0=$(now)
        within "$seed_deadline" "${CNNLSTM[@]}" train cnn_lstm --preset gpu --seed "$s" --device "$DEV" \
            --data-dir "$DATA" --no-download --out "$dir" --no-eval "${extra[@]}" "${fallback[@]}" \
            2>&1 | tee "$WORK/recipe/train-s$s.log"
        train_rc=${PIPESTATUS[0]}
        if [ "$train_rc" != 0 ] && [ "$train_rc" != 124 ] && [ ${#fallback[@]} = 0 ] \
                && grep -qiE 'bfloat16|bf16|cudnn' "$WORK/recipe/train-s$s.log"; then
            log "seed $s: failed with bf16 autocast; retrying this and later seeds with --amp off"
            fallback=(--amp off)
            rm -rf "$dir"
            within "$seed_deadline" "${CNNLSTM[@]}" train cnn_lstm --preset gpu --seed "$s" --device "$DEV" \
                --data-dir "$DATA" --no-download --out "$dir" --no-eval "${extra[@]}" "${fallback[@]}"
            train_rc=$?
        fi
        t1=$(now)
        eval_rc=skipped
        if [ -f "$dir/best.pt" ]; then
            log "seed $s: evaluate"
            within "$deadline" "${CNNLSTM[@]}" evaluate "$dir" --device "$DEV" --data-dir "$DATA" --no-download
            eval_rc=$?
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$train_rc" $(( t1 - t0 )) "$eval_rc" $(( $(now) - t1 )) \
            "${fallback[*]:-}" >> "$WORK/recipe/seeds.tsv"
        if [ "$train_rc" = 124 ] || [ "$eval_rc" = 124 ]; then rc=124
        elif [ "$train_rc" != 0 ] || [ "$eval_rc" != 0 ]; then [ $rc = 124 ] || rc=1; fi
    done
    return $rc
}

step_paper() {
    local deadline=$1
    local args=(--preset paper --device "$DEV" --no-download --out "$WORK/paper")
    if [ "$DRY" = 0 ]; then
        args+=(--data-dir "$DATA")
    else
        # Dry run: one baseline, one seed, no ablations, no raw-pixel t-SNE, 300 training images,
        # and the first 6,000 / 1,000 images of the data (so the study's t-SNE embeds 1,000 test
        # images, not 10,000; the subset has other checksums, hence --no-verify).
        within "$deadline" "$PY" - "$DATA" "$WORK/data-small" 6000 1000 <<'PY' || return 1
import gzip, struct, sys
from pathlib import Path
src, dst, n_train, n_test = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dst.mkdir(parents=True, exist_ok=True)
for name, n in (("train-images-idx3-ubyte", n_train), ("train-labels-idx1-ubyte", n_train),
                ("t10k-images-idx3-ubyte", n_test), ("t10k-labels-idx1-ubyte", n_test)):
    data = gzip.decompress((src / f"{name}.gz").read_bytes())
    ndim = data[3]  # IDX: 2 zero bytes, type, ndim, then ndim big-endian uint32 sizes, then the bytes
    dims = list(struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim]))
    item = 1
    for d in dims[1:]:
        item *= d
    body = data[4 + 4 * ndim:4 + 4 * ndim + n * item]
    (dst / f"{name}.gz").write_bytes(gzip.compress(data[:4] + struct.pack(f">{ndim}I", n, *dims[1:]) + body))
PY
        args+=(--data-dir "$WORK/data-small" --no-verify --seeds 1 --models model1 --ablations none
               --tsne-samples 0 --limit-train 300 --threads 2)
    fi
    within "$deadline" "${CNNLSTM[@]}" reproduce "${args[@]}"
}

# ---------------------------------------------------------------------------------------- driver

# record STEP STATUS RC SECONDS LIMIT: a row of steps.tsv. A rerun replaces the step's earlier row,
# except for the paper study, whose rows add up (it continues where the last command stopped).
record() {
    if [ "$1" != paper ]; then
        awk -F'\t' -v s="$1" '$1 != s' "$WORK/steps.tsv" > "$WORK/steps.tsv.tmp"
        mv "$WORK/steps.tsv.tmp" "$WORK/steps.tsv"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$WORK/steps.tsv"
}

summarize() {
    "$PY" "$REPO/benchmarks/gpu_summary.py" --work "$WORK" --budget "$BUDGET" \
        --dry-run "$DRY" --out "$OUT/summary.md" --json "$WORK/results.json" \
        || echo "gpu_check: the summary failed (see above)" >&2
    # Only small text files travel back (at most 8 files, 16 MiB each): no weights, no images.
    (cd "$WORK" && find . -type f \( -name '*.json' -o -name '*.csv' -o -name '*.tsv' -o -name '*.xml' \
        -o -name '*.md' -o -name '*.log' \) -not -path './site*' -not -path './wheel/*' -print0 \
        | tar -czf "$OUT/bundle.tar.gz.tmp" --null -T - && mv "$OUT/bundle.tar.gz.tmp" "$OUT/bundle.tar.gz")
}

rm -f "$OUT"/*.log "$OUT/summary.md" "$OUT/bundle.tar.gz"  # stale results of an earlier local run
case " $STEPS " in
    *" env "*)  # a fresh check: forget an earlier one (only the entries this script writes)
        (cd "$WORK" && rm -rf steps.tsv env.json junit-cuda.xml bench.json results.json recipe paper logs \
            site site-dry wheel data-small) ;;
esac
mkdir -p "$WORK/logs"
[ -f "$WORK/steps.tsv" ] || printf 'step\tstatus\trc\tseconds\tlimit_s\n' > "$WORK/steps.tsv"
log "OUT=$OUT WORK=$WORK budget ${BUDGET}s steps: $STEPS$( [ "$DRY" = 1 ] && echo ' (DRY RUN)')"
for step in "${ORDER[@]}"; do
    case " $STEPS " in *" $step "*) ;; *) continue ;; esac
    keep=0
    seen=0
    for later in "${ORDER[@]}"; do  # time kept back for the later steps that will run
        if [ "$later" = "$step" ]; then seen=1; continue; fi
        case " $STEPS " in *" $later "*) [ $seen = 1 ] && keep=$(( keep + BUDGET * KEEP[$later] / 100 )) ;; esac
    done
    limit=$(( BUDGET * CAP[$step] / 100 ))
    avail=$(( $(left) - RESERVE - keep ))
    [ "$avail" -lt "$limit" ] && limit=$avail
    if [ "$limit" -lt 5 ]; then
        log "$step: skipped (no time left)"
        record "$step" skipped - 0 "$limit"
        continue
    fi
    log "$step: start (limit ${limit}s) -> $OUT/$step.log"
    t0=$(now)
    "step_$step" $(( t0 + limit )) > "$OUT/$step.log" 2>&1
    rc=$?
    secs=$(( $(now) - t0 ))
    status=ok
    if [ $rc = 124 ] || [ $rc = 137 ]; then status=timeout; elif [ $rc != 0 ]; then status=failed; fi
    record "$step" "$status" "$rc" "$secs" "$limit"
    cat "$OUT/$step.log" >> "$WORK/logs/$step.log"  # the bundle keeps every command's logs
    log "$step: $status (rc $rc, ${secs}s)"
    summarize
done
log "done in $(( $(now) - START ))s; results in $OUT"
cat "$OUT/summary.md"
