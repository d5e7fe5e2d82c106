#!/bin/sh
# Run a command as it would run on a CPU with AVX2 only (no AVX-512, no native bf16).
#
# Most CPUs people have lack AVX512-BF16, and there the `fast` preset's bf16 autocast falls back
# to fp32 (cnnlstm.device.autocast_dtype). On a newer CPU these three switches make torch take the
# same paths: oneDNN's kernels (convolutions, the LSTM; and its bf16 check, which then says no),
# ATen's vectorised kernels and MKL's matmuls are capped at AVX2. The core count and clock stay
# the machine's own, so read a figure as "this CPU without AVX-512", not as some other CPU.
#
# Examples:
#   benchmarks/as_avx2.sh make run
#   benchmarks/as_avx2.sh python benchmarks/fast_flagship.py --seeds 3 --threads 2
#   benchmarks/as_avx2.sh python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"   # AVX2
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: benchmarks/as_avx2.sh COMMAND [ARGS...]" >&2
    exit 2
fi
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 exec "$@"
