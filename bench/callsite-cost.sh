#!/usr/bin/env bash
# What an indirect call costs under each mitigation, measured in the same run: a bytecode interpreter that dispatches
# every instruction through a function-pointer table, built with the packed SDK as
#   Generic/thunk   full retpoline in the thunk (the default)
#   None/thunk      thunk patched to `jmp *%reg`
#   None/inline     each call site rewritten to `call *%reg` (RetpolineCallSites=Inline)
#   Runtime         Generic on disk, patched in memory at start (RetpolineVendor=Runtime, RetpolineRuntimeMinimum=None):
#                   must cost what the vendor `patch --vendor Host --minimum None` picks on this machine costs
#   plain           RetpolineEnabled=false: no mitigation at all (the baseline)
# and prints ns per indirect call and the ratio to plain. See bench/README.md.
#
#   bench/callsite-cost.sh [CALLS_MILLIONS] [RUNS]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
millions=${1:-100}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. "$repo/bench/lib/sdk.sh"
pack_sdk

proj="$work/interp"
mkdir -p "$proj"
cat >"$proj/interp.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* A tiny stack machine: every instruction is dispatched through ops[], an indirect call each. */
typedef long (*op_fn)(long acc, long arg);
static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_xor(long a, long b) { return a ^ b; }
static long op_mul(long a, long b) { return a * (b | 1); }
static long op_shl(long a, long b) { return a << (b & 3); }
static long op_neg(long a, long b) { (void)b; return -a; }
static long op_inc(long a, long b) { (void)b; return a + 1; }
static long op_mix(long a, long b) { return (a >> 1) ^ b; }
op_fn ops[8] = { op_add, op_sub, op_xor, op_mul, op_shl, op_neg, op_inc, op_mix };
int main(int argc, char **argv) {
  long calls = (argc > 1 ? atol(argv[1]) : 100) * 1000000L;
  unsigned char program[256];
  for (int i = 0; i < 256; i++) program[i] = (unsigned char)((i * 37 + 11) & 7); /* data-dependent targets */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long acc = 1;
  for (long n = 0; n < calls; n++) acc = ops[program[n & 255]](acc, n);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  printf("%.3f ns/call (acc=%ld)\n", ns / calls, acc);
  return 0;
}
C
write_exe_project "$proj" interp

declare -A props=(
  [plain]="-p:RetpolineEnabled=false"
  [generic-thunk]="-p:RetpolineVendor=Generic -p:RetpolineCallSites=Thunk"
  [none-thunk]="-p:RetpolineVendor=None -p:RetpolineCallSites=Thunk"
  [none-inline]="-p:RetpolineVendor=None -p:RetpolineCallSites=Inline"
  [runtime]="-p:RetpolineVendor=Runtime -p:RetpolineRuntimeMinimum=None"
)
order=(plain generic-thunk none-thunk none-inline runtime)
cd "$proj"
for v in "${order[@]}"; do
  rm -rf bin obj/Release
  # shellcheck disable=SC2086 # the property list is split on purpose
  dotnet build interp.nativeproj -nologo -v:q ${props[$v]} >"$work/build-$v.log" 2>&1 || { cat "$work/build-$v.log" >&2; exit 2; }
  cp bin/Release/interp "$work/interp-$v"
done

declare -A best
for v in "${order[@]}"; do
  for ((r = 1; r <= runs; r++)); do
    ns=$("$work/interp-$v" "$millions" | awk '{ print $1 }')
    if [ -z "${best[$v]:-}" ] || awk -v a="$ns" -v b="${best[$v]}" 'BEGIN { exit !(a < b) }'; then best[$v]=$ns; fi
  done
done

echo
echo "interpreter: ${millions}M indirect calls, best of $runs, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "kernel says: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null || echo unknown)"
# What Runtime (minimum None) chooses here, in the tool's words: its row must match that vendor's thunk row.
host=$(dotnet run --project "$repo/Tool/Retpoline.Tool.csproj" -c Release --artifacts-path "$work/tool" -- status --minimum None 2>/dev/null \
  | sed -n 's/^a Runtime module here chooses \([A-Za-z]*\) with minimum None.*/\1/p')
echo "Runtime here (minimum None) chooses: ${host:-unknown} -> compare with ${host:+$(echo "$host" | tr 'A-Z' 'a-z')-thunk}"
printf '%-16s %12s %10s\n' "build" "ns/call" "vs plain"
for v in "${order[@]}"; do
  printf '%-16s %12s %9sx\n' "$v" "${best[$v]}" "$(awk -v a="${best[$v]}" -v b="${best[plain]}" 'BEGIN { printf "%.2f", a / b }')"
done
