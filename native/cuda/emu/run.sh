#!/usr/bin/env bash
# Runs the CUDA kernels' source on the CPU against the references (emu_check.cc, under emu.h): a check for machines
# without a GPU. Not part of the CMake build. Needs g++ 11+ (C++20), cmake, python3 and the CUDA headers (nvcc's
# include directory; no driver, no GPU).
#   native/cuda/emu/run.sh                  every op (5-10 min on a loaded 2-core machine)
#   native/cuda/emu/run.sh matmul           one op
#   native/cuda/emu/run.sh --mma [quick [S]]  mma.cuh's and wgmma.cuh's wrappers, then matmul_q_mma_cuda on matmul_q's
#                                           M > 8 cases and matmul_q_wgmma_cuda (forced) on its int8 i8_pc cases
#                                           with M >= 64 (quick: K <= 1000; S: only case names containing S)
#   native/cuda/emu/run.sh --matmul-q-exact [S]  matmul_q's int8 path bit for bit: the GEMV (M <= 8), mma.sync
#                                           (M > 8) and wgmma (forced, i8_pc, M >= 64) against the exact integer
#                                           products and matmul_q_ref, on data whose float part is exact by
#                                           construction, int32 extremes included (~75 s; S: case names with S)
#   native/cuda/emu/run.sh --conversions    f32 -> f16/bf16 of elementwise.cuh vs dtype.h, all 2^32 inputs (~20 s)
#   native/cuda/emu/run.sh --allreduce [quick]  the custom collectives (native/dist/cuda_ar_kernels.cuh: all-reduce,
#                                           all-gather, reduce-scatter, broadcast): a separate program, ar_check.cc,
#                                           that runs R = 2..8 ranks as OS threads, each launching the kernels
#                                           through the host's own plan_call, against reduce.h and byte moves, plus
#                                           the timeout / abort / mismatch paths (see its header)
# Work files go to $EMU_BUILD (default /tmp/llmk-emu).
set -eu
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
WORK="${EMU_BUILD:-/tmp/llmk-emu}"
if [ -z "${CUDA_INC:-}" ]; then
  CUDA_INC="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")")/include"
  [ -f "$CUDA_INC/cuda_runtime.h" ] || CUDA_INC=/usr/local/cuda/include
fi
mkdir -p "$WORK/src"
# 1. the references and the rest of the core, CPU only (cases, registry, refs)
cmake -S "$ROOT" -B "$WORK/core" -DLLMK_CUDA=OFF -DLLMK_ADDON=OFF >/dev/null
cmake --build "$WORK/core" -j "$(nproc)" --target llmk_core >/dev/null
# 2. the kernel sources with their launches rewritten for emu.h
python3 - "$ROOT/native/cuda" "$WORK/src" <<'PY'
import glob, os, re, sys
src, dst = sys.argv[1], sys.argv[2]
launch = re.compile(r'(\b[\w:]+(?:<[^<>;]*>)?)<<<([^;]*?)>>>\(')
for path in glob.glob(os.path.join(src, "*.cu")) + glob.glob(os.path.join(src, "*.cuh")):
    name = os.path.basename(path)
    if name in ("runtime.cu", "backend.cu"):
        continue  # the runtime needs a driver; the table is not used here
    text = launch.sub(r'::emu::launch(\2).run(\1, ', open(path).read())
    out = os.path.join(dst, name[:-3] + ".cc" if name.endswith(".cu") else name)
    open(out, "w").write(text)
# The all-reduce's kernels and launch planning (cuda_ar.cu itself is host code that needs a driver: not emulated).
os.makedirs(os.path.join(dst, "dist"), exist_ok=True)
path = os.path.join(src, "..", "dist", "cuda_ar_kernels.cuh")
open(os.path.join(dst, "dist", "cuda_ar_kernels.cuh"), "w").write(launch.sub(r'::emu::launch(\2).run(\1, ', open(path).read()))
PY
if [ "${1:-}" = "--allreduce" ]; then
  shift
  # (-I native/dist after the rewritten copy: its #include "cuda_ar.h" finds the real header.)
  g++ -std=c++20 -O1 -w -include "$ROOT/native/cuda/emu/emu.h" -I"$WORK/src" -I"$CUDA_INC" -I"$ROOT/native" \
    -I"$ROOT/native/dist" "$ROOT/native/cuda/emu/ar_check.cc" "$WORK/core/libllmk_core.a" -lpthread -o "$WORK/ar_check"
  exec "$WORK/ar_check" "$@"
fi
# 3. build and run (the rewritten headers first on the include path; our cuda_last_error wins over no_cuda.cc's)
g++ -std=c++20 -O1 -w -include "$ROOT/native/cuda/emu/emu.h" -I"$WORK/src" -I"$CUDA_INC" -I"$ROOT/native" \
  -I"$ROOT/native/cuda" "$ROOT/native/cuda/emu/emu_check.cc" "$WORK"/src/*.cc "$WORK/core/libllmk_core.a" \
  -Wl,--allow-multiple-definition -lpthread -o "$WORK/emu_check"
exec "$WORK/emu_check" "$@"
