#!/usr/bin/env bash
# gpu-check.sh: build the CUDA backend on a bare GPU host and check and time it, without Node or npm.
#
# Needs: cmake (3.18+), nvcc, ninja (optional: falls back to make), nvidia-smi; python3 with torch is optional
# (then torch.matmul fp16, torch._int_mm and scaled_dot_product_attention are timed as peers at lk_bench's shapes).
# Run from the repository root:
#   bash bench/gpu-check.sh                 # results in ./gpu-out
#   OUT=/some/dir bash bench/gpu-check.sh   # results in /some/dir
# Steps (each bounded by `timeout`, and all of them by LK_T_TOTAL, default 540 s, so that the summary is always
# written inside the device tool's 10-minute limit; a normal run on an H200 takes a few minutes):
#   1. nvidia-smi's GPU line, nvcc and cmake versions                        -> $OUT/gpu.txt
#   2. configure for sm_90a only (fast) with the ptxas resource report, build with every core -> $OUT/build.log
#   3. lk_check: every op on every backend against the CPU reference          -> $OUT/check.log, $OUT/check.json
#   4. lk_bench --backend cuda                                                -> $OUT/bench.log, $OUT/bench.json
#   4b. the opt-in wgmma path (LLMK_WGMMA=1, matmul_q_wgmma.cu): lk_check --op matmul_q --backend cuda and the
#      int8 8192^3 GEMM again, and the GMMA count in its SASS       -> appended to check.log / bench.log; the
#      bench entry goes to $BUILD/bench-wgmma.json (not $OUT: 8 files at most) and into the summary table
#   5. PyTorch peers at lk_bench's shapes (if torch is there): torch.matmul fp16, torch._int_mm, sdpa -> $OUT/peer.json
#   5b. lk_dist_check --backend cuda-local --world 2 and 4: the custom CUDA collectives (all-reduce, all-gather,
#      reduce-scatter, broadcast) with the ranks as buffers on this GPU, bit for bit -> appended to $OUT/check.log
#   6. when a Node binary was carried (.gpu/node.xz from ../shared/gpu/pack-node.sh, with dist/ built by `npm run
#      build` before the call; carry [".gpu", "dist", "node_modules/node-gyp-build", "node_modules/@huggingface"]):
#      the addon is built too (same build folder) and `node --test bench/gpu-smoke.mjs` checks the JS layer, the
#      model and the GPU collectives on CUDA against the CPU (NCCL from PyTorch's wheel when there is one)
#                                                                             -> appended to $OUT/check.log
#   7. lk_check --backend cuda under compute-sanitizer memcheck (if present)  -> appended to $OUT/check.log
#   8. the summary table, printed last                                        -> $OUT/summary.txt
# At most 8 files in $OUT (what the device tool brings back). Exit status: 0 when the build and lk_check passed
# (CUDA included), 1 otherwise.
# Knobs (environment): LK_ARCHS (default 90a), LK_BENCH_ARGS (default "--backend cuda"), LK_CHECK_ARGS (default
# none: all backends), LK_MEMCHECK=0 (skip the sanitizer), LK_T_TOTAL and LK_T_CONFIGURE / LK_T_BUILD / LK_T_CHECK /
# LK_T_BENCH / LK_T_WGMMA / LK_T_PEER / LK_T_DIST / LK_T_SMOKE / LK_T_MEMCHECK (seconds per step). LK_DRY_CPU=1: a dry run of
# this script on a machine without a GPU (CPU-only build, the smoke test on the CPU, lk_bench on the CPU).
set -u

OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BUILD=build-gpu
ARCHS="${LK_ARCHS:-90a}"
BENCH_ARGS="${LK_BENCH_ARGS:---backend cuda}"
CHECK_ARGS="${LK_CHECK_ARGS:-}"
T_CONFIGURE="${LK_T_CONFIGURE:-60}"
T_BUILD="${LK_T_BUILD:-240}"
T_CHECK="${LK_T_CHECK:-120}"
T_BENCH="${LK_T_BENCH:-150}"
T_PEER="${LK_T_PEER:-60}"
T_SMOKE="${LK_T_SMOKE:-150}"
T_WGMMA="${LK_T_WGMMA:-90}"
T_MEMCHECK="${LK_T_MEMCHECK:-120}"
T_DIST="${LK_T_DIST:-60}"
T_TOTAL="${LK_T_TOTAL:-540}"
JOBS="$(nproc 2>/dev/null || echo 4)"
T0=$(date +%s)

say() { printf '[gpu-check %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
# run_step NAME TIMEOUT LOG CMD...: runs CMD with a time cap, appends its output to LOG (and the console tail),
# sets STEP_RC and STEP_S.
# A step's cap is also cut to what is left of T_TOTAL (keeping 20 s for the summary); with under 5 s left the step
# is skipped (STEP_RC=125).
cap_left() {  # cap_left CAP -> min(CAP, time left - 20)
  local left=$(( T_TOTAL - ($(date +%s) - T0) - 20 ))
  if [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}
run_step() {
  local name="$1" cap="$2" log="$3"
  shift 3
  cap="$(cap_left "$cap")"
  if [ "$cap" -lt 5 ]; then
    echo "### $name: skipped, out of time (LK_T_TOTAL=${T_TOTAL}s)" >> "$log"
    say "$name: skipped, out of time"
    STEP_RC=125
    STEP_S=0
    return
  fi
  local t=$(date +%s)
  say "$name: $* (cap ${cap}s)"
  { echo "### $name: $*"; } >> "$log"
  timeout -k 10 "$cap" "$@" >> "$log" 2>&1
  STEP_RC=$?
  STEP_S=$(( $(date +%s) - t ))
  if [ "$STEP_RC" -eq 124 ] || [ "$STEP_RC" -eq 137 ]; then
    echo "### $name: TIMED OUT after ${cap}s" >> "$log"
    say "$name: timed out after ${cap}s"
  else
    say "$name: exit $STEP_RC in ${STEP_S}s"
  fi
}
status_word() {  # rc -> ok / timed out / skipped / failed (rc)
  case "$1" in
    0) echo "ok" ;;
    124|137) echo "TIMED OUT" ;;
    125) echo "skipped (out of time)" ;;
    126) echo "not run" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}

DRY="${LK_DRY_CPU:-0}"
CUDA_FLAG=ON
if [ "$DRY" = 1 ]; then CUDA_FLAG=OFF; BENCH_ARGS="${LK_BENCH_ARGS:---backend cpu --quick}"; fi

# ---- 0. Node, when carried: the addon is built beside the tools, where node-gyp-build finds it (build/Release) ----
NODE_BIN=""
NODE_NOTE="skipped: no Node carried (.gpu/node.xz and dist/)"
if [ -f .gpu/node.xz ] && [ -f dist/index.js ]; then
  mkdir -p /tmp/lk-node
  if xz -dc .gpu/node.xz > /tmp/lk-node/node && chmod +x /tmp/lk-node/node && /tmp/lk-node/node --version >/dev/null 2>&1; then
    NODE_BIN=/tmp/lk-node/node
    BUILD=build
    export PATH="/tmp/lk-node:$PATH"
  else
    NODE_NOTE="skipped: the carried node does not start here (it needs glibc 2.34+)"
  fi
fi
ADDON_FLAGS=(-DLLMK_ADDON=OFF)
if [ -n "$NODE_BIN" ]; then ADDON_FLAGS=(-DLLMK_ADDON=ON "-DCMAKE_JS_INC=$PWD/.gpu/include"); fi

# ---- 1. the machine ----
GPU_TXT="$OUT/gpu.txt"
: > "$GPU_TXT"
GPU_LINE="(nvidia-smi not found)"
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_LINE="$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
                --format=csv,noheader 2>&1 | head -n 4 | paste -sd ';' -)"
  timeout 30 nvidia-smi >> "$GPU_TXT" 2>&1
fi
say "gpu: $GPU_LINE"
{
  echo "gpu: $GPU_LINE"
  echo "--- nvcc"; nvcc --version 2>&1 | tail -n 2
  echo "--- cmake"; cmake --version 2>&1 | head -n 1
  echo "--- ninja"; (ninja --version 2>&1 || echo "not found")
  echo "--- python3/torch"; (python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 || true)
  echo "--- host"; uname -a; echo "cores: $JOBS"
} >> "$GPU_TXT" 2>&1

# ---- 2. configure + build ----
BUILD_LOG="$OUT/build.log"
: > "$BUILD_LOG"
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
if [ -f "$BUILD/CMakeCache.txt" ]; then
  want_gen="Unix Makefiles"
  if [ ${#GEN[@]} -gt 0 ]; then want_gen=Ninja; fi
  if ! grep -qx "LLMK_CUDA_ARCHS:STRING=$ARCHS" "$BUILD/CMakeCache.txt" ||
     ! grep -qx "LLMK_CUDA:BOOL=$CUDA_FLAG" "$BUILD/CMakeCache.txt" ||
     ! grep -qx "CMAKE_GENERATOR:INTERNAL=$want_gen" "$BUILD/CMakeCache.txt"; then
    rm -rf "$BUILD"  # configured before for other architectures or another generator
  fi
fi
run_step configure "$T_CONFIGURE" "$BUILD_LOG" cmake -S . -B "$BUILD" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release \
  "${ADDON_FLAGS[@]}" -DLLMK_CUDA="$CUDA_FLAG" -DLLMK_CUDA_ARCHS="$ARCHS" -DLLMK_PTXAS_VERBOSE=ON
CONFIGURE_RC=$STEP_RC
BUILD_RC=1
BUILD_S=0
TOOLS_NOTE=""
if [ "$CONFIGURE_RC" -eq 0 ]; then
  # Build each tool separately so that one unfinished tool does not hide the others.
  run_step build "$T_BUILD" "$BUILD_LOG" cmake --build "$BUILD" -j "$JOBS" --target llmk_core
  BUILD_RC=$STEP_RC
  BUILD_S=$STEP_S
  TARGETS="lk_check lk_bench lk_dist_check"
  if [ -n "$NODE_BIN" ]; then TARGETS="$TARGETS llm_kernels"; fi
  for tool in $TARGETS; do
    if [ "$BUILD_RC" -eq 0 ]; then
      run_step "build $tool" 120 "$BUILD_LOG" cmake --build "$BUILD" -j "$JOBS" --target "$tool"
      BUILD_S=$(( BUILD_S + STEP_S ))
      TOOLS_NOTE="$TOOLS_NOTE, $tool $(status_word "$STEP_RC")"
    fi
  done
fi
# ptxas resource report: kernels compiled and any that spill
PTXAS_KERNELS=$(grep -c "Compiling entry function" "$BUILD_LOG" 2>/dev/null || true)
PTXAS_SPILLS=$(grep -E "[1-9][0-9]* bytes spill (stores|loads)" "$BUILD_LOG" 2>/dev/null | wc -l | tr -d ' ')
PTXAS_MAXREG=$(grep -oE "Used [0-9]+ registers" "$BUILD_LOG" 2>/dev/null | awk '{ if ($2 > m) m = $2 } END { print m + 0 }')

# ---- 3. lk_check ----
CHECK_LOG="$OUT/check.log"
: > "$CHECK_LOG"
CHECK_RC=126
if [ -x "$BUILD/tools/lk_check" ]; then
  # shellcheck disable=SC2086
  run_step lk_check "$T_CHECK" "$CHECK_LOG" "$BUILD/tools/lk_check" $CHECK_ARGS --json "$OUT/check.json"
  CHECK_RC=$STEP_RC
else
  echo "lk_check was not built (see build.log)" >> "$CHECK_LOG"
fi
CHECK_LINE="$(grep -E '^lk_check: .*passed' "$CHECK_LOG" | tail -n 1)"
CUDA_LINE="$(grep -E '^cuda: ' "$CHECK_LOG" | head -n 1)"
CUDA_CHECKED=no
if grep -qE '^cuda: available' "$CHECK_LOG"; then CUDA_CHECKED=yes; fi

# ---- 4. lk_bench ----
BENCH_LOG="$OUT/bench.log"
: > "$BENCH_LOG"
BENCH_RC=126
if [ -x "$BUILD/tools/lk_bench" ]; then
  # shellcheck disable=SC2086
  run_step lk_bench "$T_BENCH" "$BENCH_LOG" "$BUILD/tools/lk_bench" $BENCH_ARGS --json "$OUT/bench.json"
  BENCH_RC=$STEP_RC
else
  echo "lk_bench was not built (see build.log)" >> "$BENCH_LOG"
fi

# ---- 4b. the opt-in wgmma path: the same checks and the W8A8 GEMM with LLMK_WGMMA=1 ----
# (matmul_q_wgmma.cu has never run on a GPU, so it is off by default; this run decides whether to flip that.)
WG_JSON="$(pwd)/$BUILD/bench-wgmma.json"
rm -f "$WG_JSON"
WGMMA_NOTE="skipped: lk_check not built"
if [ "$DRY" = 1 ]; then WGMMA_NOTE="skipped: dry run on the CPU"; fi
if [ "$DRY" != 1 ] && [ -x "$BUILD/tools/lk_check" ]; then
  run_step "lk_check matmul_q LLMK_WGMMA=1" "$T_WGMMA" "$CHECK_LOG" env LLMK_WGMMA=1 "$BUILD/tools/lk_check" \
    --op matmul_q --backend cuda
  WGMMA_NOTE="lk_check matmul_q $(status_word "$STEP_RC"): $(grep -E '^lk_check: ' "$CHECK_LOG" | tail -n 1)"
  # The library says once whether the variable took effect (compute capability 9.0 and an sm_90a kernel needed).
  WGMMA_NOTE="$WGMMA_NOTE; $(grep -oE 'wgmma path is [A-Z]+[^)]*\)' "$CHECK_LOG" | tail -n 1)"
fi
if [ "$DRY" != 1 ] && [ -x "$BUILD/tools/lk_bench" ]; then
  run_step "lk_bench int8 8192^3 LLMK_WGMMA=1" "$T_WGMMA" "$BENCH_LOG" env LLMK_WGMMA=1 "$BUILD/tools/lk_bench" \
    --backend cuda --filter "matmul_q_i8_pc_f16 M=8192" --json "$WG_JSON"
fi
# The kernel's SASS must hold GMMA instructions (HGMMA/IGMMA; only HMMA/IMMA would mean a slower path).
WG_OBJ="$(find "$BUILD" -name 'matmul_q_wgmma.cu.o' 2>/dev/null | head -n 1)"
GMMA_NOTE="no cuobjdump or no object"
if [ -n "$WG_OBJ" ] && command -v cuobjdump >/dev/null 2>&1; then
  GMMA_NOTE="$(cuobjdump -sass "$WG_OBJ" 2>/dev/null | grep -c 'GMMA') GMMA instructions in $(basename "$WG_OBJ")"
  echo "### SASS: $GMMA_NOTE" >> "$BUILD_LOG"
fi

# ---- 5. peers: torch.matmul fp16, torch._int_mm, sdpa at lk_bench's shapes ----
PEER_NOTE="skipped: no python3"
if command -v python3 >/dev/null 2>&1; then
  T_PEER="$(cap_left "$T_PEER")"
  if [ "$T_PEER" -lt 10 ]; then
    PEER_NOTE="skipped: out of time"
  elif timeout 30 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    say "peer: torch matmul fp16 / _int_mm / sdpa (cap ${T_PEER}s)"
    OUT="$OUT" timeout -k 10 "$T_PEER" python3 - <<'PY'
# PyTorch peers at the shapes lk_bench ran on cuda (bench.json), timed like lk_bench: a warm-up, then batches of
# back-to-back calls between two CUDA events, the median batch / calls. Three kinds:
#   matmul_fp16: torch.matmul(x, w.t()) in fp16 (cuBLAS) at every matmul and matmul_q shape (M, N, K): the peer of
#                our f16 matmul, and of W4A16/W8A16 matmul_q (the goal: >= 3.5x its speed at M <= 16);
#   int_mm:      torch._int_mm(int8 x, int8 w.t()) -> int32 at the W8A8 (i8_pc, int8 path) shapes (it needs M > 16);
#   sdpa:        F.scaled_dot_product_attention(q [B, 32, 1, 128], k, v [B, 8, L, 128], enable_gqa) in fp16 at the
#                paged decode shapes: the same attention over the KV gathered into one contiguous tensor (the peer
#                reads the same KV bytes as an f16 cache, without a block table).
import json, os, re, statistics, time
import torch
import torch.nn.functional as F
out = os.environ["OUT"]
mm, imm, attn = set(), set(), set()
try:
    with open(os.path.join(out, "bench.json")) as f:
        bench = json.load(f)
    for e in bench.get("entries", []):
        if e.get("backend") != "cuda": continue
        name = str(e.get("name", ""))
        m = re.search(r"^matmul_\w+ M=(\d+) N=(\d+) K=(\d+)", name)
        if m:
            shape = tuple(int(v) for v in m.groups())
            mm.add(shape)
            if name.startswith("matmul_q_i8_pc") and " int8" in name and shape[0] > 16: imm.add(shape)
        m = re.search(r"^paged_attention_decode_\w+ B=(\d+) L=(\d+)", name)
        if m: attn.add(tuple(int(v) for v in m.groups()))
except Exception as ex:
    print("peer: bench.json unreadable (%s); default shapes" % ex)
if not mm:
    mm = {(1, 4096, 4096), (16, 4096, 4096), (1024, 1024, 1024), (4096, 4096, 4096)}
res = {"peer": "torch", "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "entries": []}
torch.manual_seed(0)
def timeit(f):
    for _ in range(3): f()
    torch.cuda.synchronize()
    t0 = time.perf_counter(); f(); torch.cuda.synchronize(); one = time.perf_counter() - t0
    calls = max(1, min(1000, int(0.05 / max(one, 1e-6))))
    samples = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls): f()
        b.record(); b.synchronize()
        samples.append(a.elapsed_time(b) / 1e3 / calls)
    return statistics.median(samples)
def report(kind, key, s, flops, nbytes, extra=""):
    e = {"kind": kind, "median_s": s, "tflops": flops / s / 1e12, "gbs": nbytes / s / 1e9}
    e.update(key)
    res["entries"].append(e)
    print("peer %s %s: %.4f ms, %.1f TFLOP/s, %.0f GB/s%s" % (kind, " ".join("%s=%d" % kv for kv in key.items()),
          s * 1e3, e["tflops"], e["gbs"], extra))
for (M, N, K) in sorted(mm):
    try:
        x = torch.randn(M, K, device="cuda", dtype=torch.float16)
        w = torch.randn(N, K, device="cuda", dtype=torch.float16)
        s = timeit(lambda: torch.matmul(x, w.t()))
        report("matmul_fp16", {"M": M, "N": N, "K": K}, s, 2.0 * M * N * K, 2.0 * (M * K + N * K + M * N))
        del x, w
    except Exception as ex:
        print("peer matmul_fp16 M=%d N=%d K=%d failed: %s" % (M, N, K, ex))
for (M, N, K) in sorted(imm):
    try:
        x = torch.randint(-127, 128, (M, K), device="cuda", dtype=torch.int8)
        w = torch.randint(-127, 128, (N, K), device="cuda", dtype=torch.int8)
        s = timeit(lambda: torch._int_mm(x, w.t()))
        report("int_mm", {"M": M, "N": N, "K": K}, s, 2.0 * M * N * K, M * K + N * K + 4.0 * M * N)
        del x, w
    except Exception as ex:
        print("peer int_mm M=%d N=%d K=%d failed: %s" % (M, N, K, ex))
for (B, L) in sorted(attn):
    try:
        H, Hkv, D = 32, 8, 128  # paged_attention_bench_cases' shape
        q = torch.randn(B, H, 1, D, device="cuda", dtype=torch.float16)
        k = torch.randn(B, Hkv, L, D, device="cuda", dtype=torch.float16)
        v = torch.randn(B, Hkv, L, D, device="cuda", dtype=torch.float16)
        s = timeit(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        report("sdpa", {"B": B, "L": L}, s, 4.0 * B * H * L * D, 2.0 * (2 * B * Hkv * L * D + 2 * B * H * D))
        del q, k, v
    except Exception as ex:
        print("peer sdpa B=%d L=%d failed: %s" % (B, L, ex))
with open(os.path.join(out, "peer.json"), "w") as f:
    json.dump(res, f, indent=1)
PY
    PEER_RC=$?
    PEER_NOTE="$(status_word $PEER_RC)"
  else
    PEER_NOTE="skipped: python3 has no torch with CUDA"
  fi
fi
[ -f "$OUT/peer.json" ] || echo "{\"peer\": \"torch\", \"skipped\": \"$PEER_NOTE\"}" > "$OUT/peer.json"

# ---- 5b. the custom CUDA collectives without Node: R ranks as buffers on this GPU, bit for bit ----
DIST_NOTE="skipped: no lk_dist_check"
if [ -x "$BUILD/tools/lk_dist_check" ] && [ "$DRY" != 1 ]; then
  DIST_NOTE=""
  for R in 2 4; do
    run_step "lk_dist_check cuda-local R=$R" "$T_DIST" "$CHECK_LOG" "$BUILD/tools/lk_dist_check" --backend cuda-local --world "$R"
    DIST_NOTE="$DIST_NOTE${DIST_NOTE:+; }R=$R $(status_word "$STEP_RC") $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$CHECK_LOG" | tail -n 1)"
  done
elif [ "$DRY" = 1 ]; then
  DIST_NOTE="skipped: dry run (no GPU)"
fi

# ---- 6. the Node-level smoke test (bench/gpu-smoke.mjs) ----
SMOKE_NOTE="$NODE_NOTE"
if [ -n "$NODE_BIN" ] && [ -f "$BUILD/Release/llm_kernels.node" ]; then
  # NCCL: PyTorch's wheel ships libnccl.so.2 (the nvidia-nccl package); nccl.cc dlopens it by that name.
  NCCL_DIR="$(timeout 30 python3 -c 'import os, nvidia.nccl as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)"
  SMOKE_DEV=cuda
  if [ "$DRY" = 1 ]; then SMOKE_DEV=cpu; fi
  run_step node-smoke "$T_SMOKE" "$CHECK_LOG" env LK_SMOKE_DEVICE="$SMOKE_DEV" \
    LD_LIBRARY_PATH="${NCCL_DIR:+$NCCL_DIR:}${LD_LIBRARY_PATH:-}" "$NODE_BIN" --test bench/gpu-smoke.mjs
  SMOKE_NOTE="$(status_word "$STEP_RC"): $(grep -E '^# (pass|fail|skipped) ' "$CHECK_LOG" | tail -n 3 | sed 's/^# //' | paste -sd ',' -)"
  SMOKE_NOTE="$SMOKE_NOTE; NCCL dir: ${NCCL_DIR:-none}"
elif [ -n "$NODE_BIN" ]; then
  SMOKE_NOTE="skipped: the addon was not built (see build.log)"
fi

# ---- 7. compute-sanitizer memcheck of the cuda checks (out-of-bounds reads are invisible to lk_check's guards) ----
MEMCHECK_NOTE="skipped: no compute-sanitizer"
if [ "${LK_MEMCHECK:-1}" = 0 ]; then
  MEMCHECK_NOTE="skipped: LK_MEMCHECK=0"
elif [ ! -x "$BUILD/tools/lk_check" ]; then
  MEMCHECK_NOTE="skipped: no lk_check"
elif command -v compute-sanitizer >/dev/null 2>&1; then
  run_step memcheck "$T_MEMCHECK" "$CHECK_LOG" compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$BUILD/tools/lk_check" --backend cuda
  MEMCHECK_NOTE="$(status_word "$STEP_RC")"
  if [ "$STEP_RC" -eq 3 ]; then MEMCHECK_NOTE="ERRORS found (see check.log)"; fi
  MEMCHECK_NOTE="$MEMCHECK_NOTE; $(grep -E 'ERROR SUMMARY' "$CHECK_LOG" | tail -n 1)"
fi

# ---- 8. summary (last) ----
SUMMARY="$OUT/summary.txt"
{
  echo "================ gpu-check summary ================"
  echo "gpu:       $GPU_LINE"
  echo "build:     configure $(status_word "$CONFIGURE_RC"), llmk_core $(status_word "$BUILD_RC")$TOOLS_NOTE (${BUILD_S}s, sm_$ARCHS, -j$JOBS)"
  echo "ptxas:     $PTXAS_KERNELS kernels, $PTXAS_SPILLS with spills, max ${PTXAS_MAXREG} registers"
  echo "lk_check:  ${CHECK_LINE:-no result ($(status_word "$CHECK_RC"))}"
  echo "           ${CUDA_LINE:-cuda: no line} (cuda checked: $CUDA_CHECKED)"
  echo "lk_bench:  $(status_word "$BENCH_RC") (args: $BENCH_ARGS)"
  echo "peer:      torch (matmul fp16, _int_mm, sdpa): $PEER_NOTE"
  echo "dist:      custom collectives, cuda-local: $DIST_NOTE"
  echo "node:      $SMOKE_NOTE"
  echo "memcheck:  $MEMCHECK_NOTE"
  echo "wgmma:     LLMK_WGMMA=1: $WGMMA_NOTE; SASS: $GMMA_NOTE"
  if command -v python3 >/dev/null 2>&1; then
    OUT="$OUT" WG_JSON="$WG_JSON" python3 - <<'PY' 2>&1
# One table (the LLMK_WGMMA=1 run of step 4b adds its rows, marked [LLMK_WGMMA=1]): each cuda entry of lk_bench (time, GFLOP/s or GB/s, fraction of the measured copy bandwidth) and its
# PyTorch peer where there is one, with peer time / our time (> 1: we are faster):
#   matmul_f16 and matmul_q (f16 x) entries: torch.matmul fp16 at the same M, N, K;
#   matmul_q i8_pc int8 entries with M > 16: torch._int_mm;  paged_attention_decode_f16: sdpa on the gathered KV.
import json, os, re
out = os.environ["OUT"]
def load(name):
    try:
        with open(os.path.join(out, name)) as f: return json.load(f)
    except Exception: return None
bench, peer = load("bench.json"), load("peer.json")
peers = {}
for e in (peer or {}).get("entries", []):
    kind = e.get("kind", "matmul_fp16")
    key = (e["M"], e["N"], e["K"]) if kind != "sdpa" else (e["B"], e["L"])
    peers[(kind, key)] = e
for b in (bench or {}).get("backends", []):
    if b.get("name") == "cuda" and b.get("used"):
        print("  cuda roof: measured copy %.0f GB/s (theoretical %.0f GB/s)" % (b.get("copy_gbs", 0), b.get("memory_bandwidth_gbs", 0)))
rows = []
def num(v):
    return isinstance(v, (int, float)) and v == v
wg = load(os.environ.get("WG_JSON", "")) if os.environ.get("WG_JSON") else None
entries = list((bench or {}).get("entries", []))
entries += [dict(e, name=str(e.get("name", "")) + " [LLMK_WGMMA=1]") for e in (wg or {}).get("entries", [])]
for e in entries:
    if e.get("backend") != "cuda": continue
    name = str(e.get("name", ""))
    if e.get("skipped"):
        rows.append((name, "skipped: " + str(e["skipped"])[:40], "", "", "", "", "")); continue
    t = e.get("median_s") or 0
    gf, gb, roof = e.get("gflops"), e.get("gbs"), e.get("roof_fraction")
    p = None
    m = re.search(r"^(matmul_f16|matmul_q_\w+_f16) M=(\d+) N=(\d+) K=(\d+)", name)
    if m:
        shape = tuple(int(v) for v in m.groups()[1:])
        if name.startswith("matmul_q_i8_pc") and " int8" in name and ("int_mm", shape) in peers:
            p = peers[("int_mm", shape)]
        else:
            p = peers.get(("matmul_fp16", shape))
    m = re.search(r"^paged_attention_decode_f16 B=(\d+) L=(\d+)", name)
    if m: p = peers.get(("sdpa", tuple(int(v) for v in m.groups())))
    pcol = ratio = ""
    if p:
        pcol = "%s %.3f ms" % (p.get("kind", "matmul_fp16"), p["median_s"] * 1e3)
        if p["median_s"] > 0 and t > 0: ratio = "%.2f" % (p["median_s"] / t)
    rows.append((name, "%.4f" % (t * 1e3), "%.0f" % gf if num(gf) and gf > 0 else "", "%.0f" % gb if num(gb) else "",
                 "%.0f%%" % (roof * 100) if num(roof) else "", pcol, ratio))
if rows:
    hdr = ("entry (cuda)", "median ms", "GFLOP/s", "GB/s", "of copy bw", "torch peer", "peer/ours")
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    print("  " + "  ".join(str(hdr[i]).ljust(w[i]) for i in range(len(hdr))))
    for r in rows: print("  " + "  ".join(str(r[i]).ljust(w[i]) for i in range(len(hdr))))
else:
    print("  (no cuda entries in bench.json)")
    for e in (peer or {}).get("entries", []):
        print("  torch %s: %.3f ms, %.1f TFLOP/s" % (e.get("kind"), e["median_s"] * 1e3, e["tflops"]))
PY
  else
    echo "  (no python3: the lk_bench table is the tail of bench.log)"
    grep -iE "cuda" "$BENCH_LOG" | tail -n 30
  fi
  echo "files:     $(cd "$OUT" && ls | paste -sd ' ' -)  (in $OUT)"
  echo "time:      $(( $(date +%s) - T0 ))s"
} > "$SUMMARY" 2>&1
echo
cat "$SUMMARY"

if [ "$BUILD_RC" -eq 0 ] && [ "$CHECK_RC" -eq 0 ] && [ "$CUDA_CHECKED" = yes ]; then exit 0; fi
exit 1
