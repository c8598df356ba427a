#!/usr/bin/env bash
# Whole-process wall time of `retpoline verify FILE` against the objdump pipeline that counts the same thing,
# measured in the same run on the same machine, and the ratio between them. See bench/README.md.
#
#   bench/verify-vs-objdump.sh [FILE] [RUNS]
#
# FILE defaults to libLLVM-14.so.1 (llvm-14, which clang-14 brings; ~110 MB, ~75,000 indirect branches).
# RUNS defaults to 3; each side's best (minimum) wall time is reported.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
file=${1:-/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1}
runs=${2:-3}
target=${RETPOLINE_BENCH_TARGET:-20}

[ -f "$file" ] || { echo "bench: $file not found (install llvm-14, or pass another x86-64 ELF file)" >&2; exit 2; }
for cmd in dotnet objdump grep awk; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is required" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The tool as it ships for speed: NativeAOT (no JIT warm-up in a one-shot process). RETPOLINE_BENCH_JIT=1 measures
# the framework-dependent build instead, so the difference can be seen.
if [ "${RETPOLINE_BENCH_JIT:-0}" = 1 ]; then publish_mode=(); mode=jit; else publish_mode=(-r linux-x64 -p:PublishAot=true); mode=nativeaot; fi
echo "publishing Tool (Release, $mode) ..." >&2
dotnet publish "$repo/Tool/Retpoline.Tool.csproj" -c Release "${publish_mode[@]}" -o "$work/tool" --artifacts-path "$work/artifacts" \
  -nologo -v quiet >"$work/publish.log" 2>&1 || { cat "$work/publish.log" >&2; exit 2; }
if [ -x "$work/tool/retpoline" ]; then retpoline=("$work/tool/retpoline"); else retpoline=(dotnet "$work/tool/retpoline.dll"); fi

# ---- the two commands under test ------------------------------------------------------------------------------------
run_retpoline() {
  # Exit 1 means "findings" (an unmitigated library has thousands): expected. Anything else is a failure.
  local rc=0
  "${retpoline[@]}" verify "$file" >"$work/retpoline.out" 2>"$work/retpoline.err" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "bench: retpoline verify exited $rc:" >&2; cat "$work/retpoline.err" >&2; exit 2
  fi
}
run_objdump() {
  # grep -c exits 1 when it counts 0: that is a count, not a failure.
  objdump -d --no-show-raw-insn "$file" | grep -cE '(call|jmp)\s+\*' >"$work/objdump.count" || [ "$?" -eq 1 ]
}

now() { date +%s.%N; }
# best_of NAME: runs run_NAME $runs times, prints the minimum wall time in seconds.
best_of() {
  local fn=$1 best="" t0 t1 dt i
  for ((i = 1; i <= runs; i++)); do
    t0=$(now); "run_$fn"; t1=$(now)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "  $fn run $i: ${dt}s" >&2
    if [ -z "$best" ] || awk -v a="$dt" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$dt; fi
  done
  echo "$best"
}

# ---- same answer first ----------------------------------------------------------------------------------------------
json_rc=0
"${retpoline[@]}" verify --json "$file" >"$work/report.json" 2>"$work/json.err" || json_rc=$?
if [ "$json_rc" -ne 0 ] && [ "$json_rc" -ne 1 ]; then
  echo "bench: retpoline verify --json exited $json_rc:" >&2; cat "$work/json.err" >&2; exit 2
fi
ours=$(grep -m1 -oE '"indirectBranches": *[0-9]+' "$work/report.json" | grep -oE '[0-9]+$')
run_objdump
theirs=$(cat "$work/objdump.count")

# ---- timings (warm page cache: both sides read the file once above) -------------------------------------------------
if command -v hyperfine >/dev/null; then
  echo "timing with hyperfine ($runs runs each) ..." >&2
  hyperfine --runs "$runs" --warmup 1 -i --export-json "$work/hf.json" \
    -n retpoline "${retpoline[*]} verify '$file' >/dev/null" \
    -n objdump "objdump -d --no-show-raw-insn '$file' | grep -cE '(call|jmp)\\s+\\*' >/dev/null" >&2
  # hyperfine's JSON: results[].min in seconds, in the order given.
  mins=$(grep -oE '"min": *[0-9.e+-]+' "$work/hf.json" | grep -oE '[0-9.e+-]+$')
  t_ours=$(awk 'NR == 1 { printf "%.3f", $1 }' <<<"$mins")
  t_objdump=$(awk 'NR == 2 { printf "%.3f", $1 }' <<<"$mins")
else
  echo "timing with date +%s.%N (best of $runs each; install hyperfine for more detail) ..." >&2
  t_ours=$(best_of retpoline)
  t_objdump=$(best_of objdump)
fi

ratio=$(awk -v o="$t_objdump" -v r="$t_ours" 'BEGIN { printf "%.1f", (r > 0 ? o / r : 0) }')
size=$(stat -c %s "$file")

echo
echo "file:     $file ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }'))"
echo "machine:  $(nproc) cores, $(dotnet --version | sed 's/^/.NET SDK /'), $(objdump --version | head -1)"
printf '%-52s %12s %20s\n' "command" "best wall" "indirect branches"
printf '%-52s %11ss %20s\n' "retpoline verify FILE" "$t_ours" "$ours"
printf '%-52s %11ss %20s\n' "objdump -d --no-show-raw-insn FILE | grep -cE ..." "$t_objdump" "$theirs"
echo
echo "objdump/retpoline = ${ratio}x (target >= ${target}x)"

status=0
if [ "$ours" != "$theirs" ]; then
  echo "MISMATCH: retpoline counted $ours indirect branches, objdump $theirs" >&2
  status=1
fi
if ! awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r >= t) }'; then
  echo "below target: ${ratio}x < ${target}x" >&2
fi
exit "$status"
