#!/usr/bin/env bash
# gpu-check.sh: build the CUDA backend on a bare GPU host and check and time it, without Node or npm.
#
# Needs: cmake (3.18+), nvcc, ninja (optional: falls back to make), nvidia-smi; python3 with torch is optional
# (then torch.matmul fp16 is timed as a peer at lk_bench's matmul shapes). Run from the repository root:
#   bash bench/gpu-check.sh                 # results in ./gpu-out
#   OUT=/some/dir bash bench/gpu-check.sh   # results in /some/dir
# Steps (each bounded by `timeout`, and all of them by LK_T_TOTAL, default 540 s, so that the summary is always
# written inside the device tool's 10-minute limit; a normal run on an H200 takes a few minutes):
#   1. nvidia-smi's GPU line, nvcc and cmake versions                        -> $OUT/gpu.txt
#   2. configure for sm_90a only (fast) with the ptxas resource report, build with every core -> $OUT/build.log
#   3. lk_check: every op on every backend against the CPU reference          -> $OUT/check.log, $OUT/check.json
#   4. lk_bench --backend cuda                                                -> $OUT/bench.log, $OUT/bench.json
#   5. torch.matmul fp16 at lk_bench's matmul shapes (if torch is there)      -> $OUT/peer.json
#   6. lk_check --backend cuda under compute-sanitizer memcheck (if present)  -> appended to $OUT/check.log
#   7. the summary table, printed last                                        -> $OUT/summary.txt
# At most 8 files in $OUT (what the device tool brings back). Exit status: 0 when the build and lk_check passed
# (CUDA included), 1 otherwise.
# Knobs (environment): LK_ARCHS (default 90a), LK_BENCH_ARGS (default "--backend cuda"), LK_CHECK_ARGS (default
# none: all backends), LK_MEMCHECK=0 (skip the sanitizer), LK_T_TOTAL and LK_T_CONFIGURE / LK_T_BUILD / LK_T_CHECK /
# LK_T_BENCH / LK_T_PEER / LK_T_MEMCHECK (seconds per step).
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
T_MEMCHECK="${LK_T_MEMCHECK:-120}"
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
     ! grep -qx "CMAKE_GENERATOR:INTERNAL=$want_gen" "$BUILD/CMakeCache.txt"; then
    rm -rf "$BUILD"  # configured before for other architectures or another generator
  fi
fi
run_step configure "$T_CONFIGURE" "$BUILD_LOG" cmake -S . -B "$BUILD" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release \
  -DLLMK_ADDON=OFF -DLLMK_CUDA=ON -DLLMK_CUDA_ARCHS="$ARCHS" -DLLMK_PTXAS_VERBOSE=ON
CONFIGURE_RC=$STEP_RC
BUILD_RC=1
BUILD_S=0
TOOLS_NOTE=""
if [ "$CONFIGURE_RC" -eq 0 ]; then
  # Build each tool separately so that one unfinished tool does not hide the others.
  run_step build "$T_BUILD" "$BUILD_LOG" cmake --build "$BUILD" -j "$JOBS" --target llmk_core
  BUILD_RC=$STEP_RC
  BUILD_S=$STEP_S
  for tool in lk_check lk_bench; do
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

# ---- 5. peer: torch.matmul fp16 at lk_bench's matmul shapes ----
PEER_NOTE="skipped: no python3"
if command -v python3 >/dev/null 2>&1; then
  T_PEER="$(cap_left "$T_PEER")"
  if [ "$T_PEER" -lt 10 ]; then
    PEER_NOTE="skipped: out of time"
  elif timeout 30 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    say "peer: torch.matmul fp16 (cap ${T_PEER}s)"
    OUT="$OUT" timeout -k 10 "$T_PEER" python3 - <<'PY'
# Times torch.matmul(x, w.t()) in fp16 (cuBLAS) at the matmul shapes lk_bench ran on cuda (or a default list),
# like lk_bench: a warm-up, then batches of back-to-back calls between two CUDA events, the median batch / calls.
import json, os, re, statistics, time
import torch
out = os.environ["OUT"]
shapes = set()
try:
    with open(os.path.join(out, "bench.json")) as f:
        bench = json.load(f)
    for e in bench.get("entries", []):
        m = re.search(r"matmul_\w+ M=(\d+) N=(\d+) K=(\d+)", str(e.get("name", "")))
        if m and e.get("backend") == "cuda":
            shapes.add(tuple(int(v) for v in m.groups()))
except Exception as ex:  # no bench.json: the default shapes
    print("peer: bench.json unreadable (%s); default shapes" % ex)
if not shapes:
    shapes = {(1, 4096, 4096), (16, 4096, 4096), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096)}
res = {"peer": "torch.matmul fp16", "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "entries": []}
torch.manual_seed(0)
for (M, N, K) in sorted(shapes):
    x = torch.randn(M, K, device="cuda", dtype=torch.float16)
    w = torch.randn(N, K, device="cuda", dtype=torch.float16)
    f = lambda: torch.matmul(x, w.t())
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
    s = statistics.median(samples)
    flops = 2.0 * M * N * K
    nbytes = 2.0 * (M * K + N * K + M * N)
    res["entries"].append({"M": M, "N": N, "K": K, "median_s": s, "tflops": flops / s / 1e12, "gbs": nbytes / s / 1e9})
    print("peer torch fp16 M=%d N=%d K=%d: %.3f ms, %.1f TFLOP/s, %.0f GB/s" % (M, N, K, s * 1e3, flops / s / 1e12, nbytes / s / 1e9))
with open(os.path.join(out, "peer.json"), "w") as f:
    json.dump(res, f, indent=1)
PY
    PEER_RC=$?
    PEER_NOTE="$(status_word $PEER_RC)"
  else
    PEER_NOTE="skipped: python3 has no torch with CUDA"
  fi
fi
[ -f "$OUT/peer.json" ] || echo "{\"peer\": \"torch.matmul fp16\", \"skipped\": \"$PEER_NOTE\"}" > "$OUT/peer.json"

# ---- 6. compute-sanitizer memcheck of the cuda checks (out-of-bounds reads are invisible to lk_check's guards) ----
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

# ---- 7. summary (last) ----
SUMMARY="$OUT/summary.txt"
{
  echo "================ gpu-check summary ================"
  echo "gpu:       $GPU_LINE"
  echo "build:     configure $(status_word "$CONFIGURE_RC"), llmk_core $(status_word "$BUILD_RC")$TOOLS_NOTE (${BUILD_S}s, sm_$ARCHS, -j$JOBS)"
  echo "ptxas:     $PTXAS_KERNELS kernels, $PTXAS_SPILLS with spills, max ${PTXAS_MAXREG} registers"
  echo "lk_check:  ${CHECK_LINE:-no result ($(status_word "$CHECK_RC"))}"
  echo "           ${CUDA_LINE:-cuda: no line} (cuda checked: $CUDA_CHECKED)"
  echo "lk_bench:  $(status_word "$BENCH_RC") (args: $BENCH_ARGS)"
  echo "peer:      torch.matmul fp16: $PEER_NOTE"
  echo "memcheck:  $MEMCHECK_NOTE"
  if command -v python3 >/dev/null 2>&1; then
    OUT="$OUT" python3 - <<'PY' 2>&1
# One table: each cuda entry of lk_bench (time, GFLOP/s or GB/s, roofline fraction) and, for matmul, the torch
# fp16 peer at the same shape with ours/peer.
import json, os, re
out = os.environ["OUT"]
def load(name):
    try:
        with open(os.path.join(out, name)) as f: return json.load(f)
    except Exception: return None
bench, peer = load("bench.json"), load("peer.json")
peers = {}
for e in (peer or {}).get("entries", []):
    peers[(e["M"], e["N"], e["K"])] = e
rows = []
def num(v):
    return isinstance(v, (int, float)) and v == v
for e in (bench or {}).get("entries", []):
    if e.get("backend") != "cuda": continue
    name = str(e.get("name", ""))
    if e.get("skipped"):
        rows.append((name, "skipped: " + str(e["skipped"])[:40], "", "", "", "", "")); continue
    t = e.get("median_s") or 0
    gf, gb, roof = e.get("gflops"), e.get("gbs"), e.get("roof_fraction")
    pcol = ratio = ""
    m = re.search(r"matmul_f16 M=(\d+) N=(\d+) K=(\d+)", name)  # the peer is fp16: compare f16 entries only
    if m:
        p = peers.get(tuple(int(v) for v in m.groups()))
        if p:
            pcol = "%.0f" % (p["tflops"] * 1e3)
            if p["median_s"] > 0 and t > 0: ratio = "%.2f" % (p["median_s"] / t)
    rows.append((name, "%.4f" % (t * 1e3), "%.0f" % gf if num(gf) and gf > 0 else "", "%.0f" % gb if num(gb) else "",
                 "%.0f%%" % (roof * 100) if num(roof) else "", pcol, ratio))
if rows:
    hdr = ("entry (cuda)", "median ms", "GFLOP/s", "GB/s", "roof", "torch fp16 GFLOP/s", "ours/torch")
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    print("  " + "  ".join(str(hdr[i]).ljust(w[i]) for i in range(len(hdr))))
    for r in rows: print("  " + "  ".join(str(r[i]).ljust(w[i]) for i in range(len(hdr))))
else:
    print("  (no cuda entries in bench.json)")
    for e in (peer or {}).get("entries", []):
        print("  torch fp16 M=%d N=%d K=%d: %.3f ms, %.1f TFLOP/s" % (e["M"], e["N"], e["K"], e["median_s"] * 1e3, e["tflops"]))
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
