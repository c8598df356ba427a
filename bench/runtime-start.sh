#!/usr/bin/env bash
# What RetpolineVendor=Runtime costs when a process starts, measured in the same run (see bench/README.md):
#   1. Whole-process start. One small program built with the packed SDK three ways: Generic (no routine),
#      Runtime with the default minimum (Generic: only the record is linked, nothing runs) and Runtime with
#      RetpolineRuntimeMinimum=None (the routine reads the environment, spectre_v2 and cpuinfo, and writes the thunks
#      when this machine's rules say so). A C starter spawns them alternately RUNS times each; best and median µs
#      per start, and the ratio to Generic.
#   2. The routine alone. The same program with two .preinit_array probes around the routine, which is compiled with
#      the very command the SDK used (its .cmd record) plus, for one variant, a host fixture root where the rules
#      pick None, so all 30 thunks are really written through /proc/self/mem; µs between the probes.
#
#   bench/runtime-start.sh [RUNS]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. "$repo/bench/lib/sdk.sh"
pack_sdk

proj="$work/app"
mkdir -p "$proj"
cat >"$proj/app.c" <<'C'
typedef int (*op_fn)(int);
static int twice(int x) { return 2 * x; }
op_fn volatile op = twice;
int main(void) { return op(21) == 42 ? 0 : 1; }
C
write_exe_project "$proj" app

declare -A props=(
  [generic]="-p:RetpolineVendor=Generic"
  [runtime-min-generic]="-p:RetpolineVendor=Runtime"
  [runtime-min-none]="-p:RetpolineVendor=Runtime -p:RetpolineRuntimeMinimum=None"
)
order=(generic runtime-min-generic runtime-min-none)
cd "$proj"
for v in "${order[@]}"; do
  rm -rf bin obj/Release
  # shellcheck disable=SC2086 # the property list is split on purpose
  dotnet build app.nativeproj -nologo -v:q ${props[$v]} >"$work/build-$v.log" 2>&1 || { cat "$work/build-$v.log" >&2; exit 2; }
  cp bin/Release/app "$work/app-$v"
done
# The routine's compile command, as the last build ran it (minimum None): first line of its .cmd record.
cmd_file=$(find obj/Release/retpoline/runtime -name 'retpoline_runtime.c.cmd' | head -1)
read -ra routine_cmd <"$cmd_file"

# ---- 1. whole-process start --------------------------------------------------------------------------------------
cat >"$work/starter.c" <<'C'
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static int cmp(const void *a, const void *b) { long x = *(const long *)a, y = *(const long *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
	int runs = atoi(argv[1]), n = argc - 2;
	long *t = calloc((size_t)runs * n, sizeof *t);
	for (int r = 0; r < runs; r++)
		for (int p = 0; p < n; p++) {
			struct timespec a, b;
			pid_t pid;
			char *args[] = { argv[2 + p], NULL };
			clock_gettime(CLOCK_MONOTONIC, &a);
			if (posix_spawn(&pid, argv[2 + p], NULL, NULL, args, environ) != 0) return 2;
			int status;
			waitpid(pid, &status, 0);
			clock_gettime(CLOCK_MONOTONIC, &b);
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "%s failed\n", argv[2 + p]); return 2; }
			t[p * runs + r] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
		}
	for (int p = 0; p < n; p++) {
		qsort(t + p * runs, runs, sizeof *t, cmp);
		printf("%ld %ld\n", t[p * runs] / 1000, t[p * runs + runs / 2] / 1000);
	}
	return 0;
}
C
gcc -O2 "$work/starter.c" -o "$work/starter"
mapfile -t starts < <("$work/starter" "$runs" "${order[@]/#/$work/app-}")

# ---- 2. the routine alone, between two .preinit_array probes -------------------------------------------------------
cat >"$work/t0.c" <<'C'
#include <time.h>
struct timespec bench_t0;
static void t0(void) { clock_gettime(CLOCK_MONOTONIC, &bench_t0); }
__attribute__((section(".preinit_array"), used)) static void (*const p0)(void) = t0;
C
cat >"$work/t1.c" <<'C'
#include <stdio.h>
#include <time.h>
extern struct timespec bench_t0;
static struct timespec t1v;
static void t1(void) { clock_gettime(CLOCK_MONOTONIC, &t1v); }
__attribute__((section(".preinit_array"), used)) static void (*const p1)(void) = t1;
typedef int (*op_fn)(int);
static int twice(int x) { return 2 * x; }
op_fn volatile op = twice;
int main(void) { printf("%ld\n", (t1v.tv_sec - bench_t0.tv_sec) * 1000000000L + (t1v.tv_nsec - bench_t0.tv_nsec)); return op(21) == 42 ? 0 : 1; }
C
compile_routine() { # OUT [EXTRA DEFINE]
  local out=$1 args=() skip=0
  for a in "${routine_cmd[@]}"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case "$a" in -o|-MF) skip=1; continue ;; -MMD) continue ;; esac
    args+=("$a")
  done
  "${args[@]}" ${2:+"$2"} -o "$out"
}
flags=(-O2 -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt -Wl,-z,now)
compile_routine "$work/routine-here.o"
compile_routine "$work/routine-eibrs.o" "-DRETPOLINE_RUNTIME_FIXTURE_ROOT=\"$repo/tests/Engine.Tests/Fixtures/host/intel-eibrs\""
gcc "${flags[@]}" "$work/t0.c" "$work/t1.c" "$repo/native/retpoline_thunks.S" -o "$work/probe-none"
gcc "${flags[@]}" "$work/t0.c" "$work/routine-here.o" "$work/t1.c" "$repo/native/retpoline_thunks.S" -o "$work/probe-here"
gcc "${flags[@]}" "$work/t0.c" "$work/routine-eibrs.o" "$work/t1.c" "$repo/native/retpoline_thunks.S" -o "$work/probe-eibrs"
routine() { # PROGRAM -> "best median" in µs (one decimal)
  for ((r = 0; r < runs; r++)); do "$1"; done | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f %.1f\n", a[1] / 1000, a[int((NR + 1) / 2)] / 1000 }'
}

echo
echo "process start: $runs runs each, alternating; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kernel says: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null || echo unknown)"
printf '%-22s %10s %10s %10s\n' "build" "best µs" "median µs" "vs Generic"
read -r gbest gmed <<<"${starts[0]}"
for i in "${!order[@]}"; do
  read -r best med <<<"${starts[$i]}"
  printf '%-22s %10s %10s %9sx\n' "${order[$i]}" "$best" "$med" "$(awk -v a="$med" -v b="$gmed" 'BEGIN { printf "%.3f", a / b }')"
done
echo
echo "the routine alone (between two .preinit_array probes), $runs runs each:"
printf '%-40s %10s %10s\n' "variant" "best µs" "median µs"
for v in none here eibrs; do
  case $v in
    none) label="no routine (probe overhead)" ;;
    here) label="minimum None, this machine's files" ;;
    eibrs) label="minimum None, intel-eibrs: 30 written" ;;
  esac
  read -r best med < <(routine "$work/probe-$v")
  printf '%-40s %10s %10s\n' "$label" "$best" "$med"
done
