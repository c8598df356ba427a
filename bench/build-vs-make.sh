#!/usr/bin/env bash
# bench/build-vs-make.sh — `dotnet build` with Retpoline.Sdk against `make -j2` on the same generated C project, with
# the same compiler and the same flags, measured in the same run:
#   clean build    (after `dotnet clean` / `make clean`)           target: dotnet <= 1.15x make
#   no-op build    (nothing changed)
#   patch+verify   vs link time, from the tasks' own timings at -v:n   target: <= 5 % of link
# Each figure is the best of $RUNS runs (default 3). make only compiles and links: patch and verify are the SDK's
# extra work, and are inside the dotnet figures.
#
# Usage: bench/build-vs-make.sh [FILES [RUNS]]   (FILES >= 50, default 60; RUNS default 3)
# Env:   FUNCS=8 (dispatch-table/switch function groups per file: how much each file gives the compiler to do)
#        RUNS=3  CC=gcc  JOBS=2  RETPOLINE_FEED=dir-with-Retpoline.Sdk.version (default: pack the repo into a temp dir)
#        KEEP=1 keeps the work directory.  FLOOR=0 skips the floor of patch+verify (bench/VerifyFloor) at the end.
set -euo pipefail

FILES=${1:-60}
FUNCS=${FUNCS:-8}
RUNS=${2:-${RUNS:-3}}
CC=${CC:-gcc}
JOBS=${JOBS:-2}
(( FILES >= 50 )) || { echo "FILES must be >= 50" >&2; exit 2; }
command -v "$CC" >/dev/null || { echo "$CC not found (apt-get install gcc)" >&2; exit 2; }
command -v make >/dev/null || { echo "make not found (apt-get install make)" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/retpoline-bench-XXXXXX)
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$WORK"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_PACKAGES="$WORK/packages"
unset CFLAGS LDFLAGS

# --- the package ----------------------------------------------------------------------------------------------------
if [[ -n ${RETPOLINE_FEED:-} ]]; then
  FEED=$(cd "$RETPOLINE_FEED" && pwd)
else
  FEED="$WORK/feed"
  echo "packing the SDK into $FEED ..."
  dotnet pack "$REPO/Tasks/Retpoline.Tasks/Retpoline.Tasks.csproj" -c Release -o "$FEED" --artifacts-path "$WORK/art" -v:q -nologo >/dev/null
fi
# A development pack is named for its content; the version is written beside it.
[[ -f $FEED/Retpoline.Sdk.version ]] || { echo "no Retpoline.Sdk.version in $FEED (pack it with dotnet pack -o)" >&2; exit 2; }
VERSION=$(<"$FEED/Retpoline.Sdk.version")

# --- the project: FILES C files, each with FUNCS groups of a dispatch table, a switch and a loop, plus main.c ---------
P="$WORK/proj"
mkdir -p "$P/src"
cat > "$P/src/common.h" <<'EOF'
#ifndef COMMON_H
#define COMMON_H
typedef long (*op_fn)(long, long);
long checksum(const long *v, int n);
EOF
for ((i = 0; i < FILES; i++)); do
  echo "long unit_$i(long seed);" >> "$P/src/common.h"
  {
    echo '#include "common.h"'
    echo '#include <string.h>'
    for ((k = 0; k < FUNCS; k++)); do
      n="${i}_$k"
      cat <<EOF
static long add_$n(long a, long b) { return a + b + $k; }
static long sub_$n(long a, long b) { return a - b - $i; }
static long mul_$n(long a, long b) { return a * (b | 1); }
static long mix_$n(long a, long b) { return (a << 3) ^ (b >> 2) ^ $k; }
static const op_fn ops_$n[] = { add_$n, sub_$n, mul_$n, mix_$n };
static long classify_$n(long x)
{
    switch (x & 15) {
    case 0: return x + 1;   case 1: return x * 3;   case 2: return x - 7;  case 3: return x ^ 0x55;
    case 4: return x >> 1;  case 5: return x << 2;  case 6: return ~x;     case 7: return x + $k;
    case 8: return x * x;   case 9: return x / 3;   case 10: return x % 11; case 11: return -x;
    default: return x;
    }
}
struct acc_$n { long v[32]; int n; };
static void push_$n(struct acc_$n *a, long x) { if (a->n < 32) a->v[a->n++] = x; else { memmove(a->v, a->v + 1, 31 * sizeof(long)); a->v[31] = x; } }
static long part_$n(long seed)
{
    struct acc_$n a = { {0}, 0 };
    long x = seed + $k;
    for (int r = 0; r < 50; r++) {
        x = ops_$n[(x ^ r) & 3](x, r + $i);
        x = classify_$n(x);
        push_$n(&a, x);
    }
    return checksum(a.v, a.n);
}
EOF
    done
    echo "long unit_$i(long seed) { long t = seed;"
    for ((k = 0; k < FUNCS; k++)); do echo "  t ^= part_${i}_$k(t);"; done
    echo "  return t; }"
  } > "$P/src/unit_$i.c"
done
echo "#endif" >> "$P/src/common.h"
{
  echo '#include <stdio.h>'
  echo '#include "common.h"'
  echo 'long checksum(const long *v, int n) { long s = 0; for (int i = 0; i < n; i++) s = s * 31 + v[i]; return s; }'
  echo 'int main(void) { long t = 0;'
  for ((i = 0; i < FILES; i++)); do echo "  t ^= unit_$i(t);"; done
  echo '  printf("%ld\n", t); return 0; }'
} > "$P/src/main.c"

cat > "$P/bench.nativeproj" <<EOF
<Project Sdk="Retpoline.Sdk/$VERSION">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <CC>$CC</CC>
  </PropertyGroup>
</Project>
EOF
cat > "$P/NuGet.config" <<EOF
<configuration>
  <config><add key="globalPackagesFolder" value="$WORK/packages" /></config>
  <packageSources><clear /><add key="feed" value="$FEED" /></packageSources>
</configuration>
EOF

# make: the same compiler, the same flags as the SDK's Release build, the package's thunks linked in. The mitigation
# flag is the compiler family's own, as the SDK picks it (GCC: thunk-extern + register; Clang: external thunk).
if "$CC" -v 2>&1 | grep -q 'clang version'; then MITIGATION="-mretpoline-external-thunk"
else MITIGATION="-mindirect-branch=thunk-extern -mindirect-branch-register"; fi
THUNKS="$WORK/packages/retpoline.sdk/$VERSION/native/retpoline_thunks.S"
cat > "$P/Makefile" <<EOF
CC := $CC
CFLAGS := $MITIGATION -fno-plt -O2 -g -ffile-prefix-map=$P=. -I$(dirname "$THUNKS")
LDFLAGS := -fno-plt -Wl,-z,now -Wl,-z,relro
SRCS := \$(wildcard src/*.c)
OBJS := \$(SRCS:src/%.c=mk/obj/%.o) mk/obj/retpoline_thunks.o
mk/bench: \$(OBJS)
	\$(CC) \$(LDFLAGS) \$^ -o \$@
mk/obj/%.o: src/%.c | mk/obj
	\$(CC) \$(CFLAGS) -MMD -MF \$(@:.o=.d) -c \$< -o \$@
mk/obj/retpoline_thunks.o: $THUNKS | mk/obj
	\$(CC) \$(CFLAGS) -MMD -MF \$(@:.o=.d) -c \$< -o \$@
mk/obj:
	mkdir -p \$@
clean:
	rm -rf mk
-include \$(OBJS:.o=.d)
.PHONY: clean
EOF
# make's own outputs must not be picked up as sources by the SDK's globs (they are .o/.d, so they are not).

cd "$P"
echo "restoring (and warming the MSBuild node) ..."
dotnet build bench.nativeproj -c Release -nologo -v:q >/dev/null
[[ -f $THUNKS ]] || { echo "restore did not extract $THUNKS" >&2; exit 2; }

now() { date +%s.%N; }
# One timed run of a command, after its preparation (not timed); the log of the best run is kept as $WORK/<label>.log.
run_once() {  # label prep command...
  local label=$1 prep=$2; shift 2
  [[ -n $prep ]] && eval "$prep" >/dev/null 2>&1
  local t0 t1 d
  t0=$(now); "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; echo "FAILED: $*" >&2; exit 1; }; t1=$(now)
  d=$(echo "$t1 - $t0" | bc -l)
  local var="T_$label"
  if [[ -z ${!var:-} ]] || (( $(echo "$d < ${!var}" | bc -l) )); then printf -v "$var" '%s' "$d"; cp "$WORK/last.log" "$WORK/$label.log"; fi
}

nproc_=$(nproc)
echo "project: $FILES C files x $FUNCS function groups + main.c, $CC $($CC -dumpfullversion 2>/dev/null || $CC -dumpversion), -O2 -g, make -j$JOBS, $nproc_ core(s), best of $RUNS"

# make and dotnet runs alternate, so a change in the machine's load during the benchmark reaches both sides alike.
for ((r = 0; r < RUNS; r++)); do
  run_once make_clean "make clean" make -j"$JOBS"
  run_once dotnet_clean "dotnet clean bench.nativeproj -c Release -nologo -v:q" dotnet build bench.nativeproj -c Release -nologo --no-restore -v:n -m:"$JOBS"
done
for ((r = 0; r < RUNS; r++)); do
  run_once make_noop "" make -j"$JOBS"
  run_once dotnet_noop "" dotnet build bench.nativeproj -c Release -nologo --no-restore -v:n -m:"$JOBS"
done

# Same program either way?
[[ $(./mk/bench) == $(./bin/Release/bench) ]] || { echo "make and dotnet builds print different results" >&2; exit 1; }
# The no-op build must not have started a compiler.
if grep -Eq "^\s*$CC .* -c " "$WORK/dotnet_noop.log"; then echo "no-op dotnet build started a compiler" >&2; exit 1; fi

link_ms=$(sed -nE 's/.*Retpoline: link ([0-9.]+) ms.*/\1/p' "$WORK/dotnet_clean.log" | tail -1)
read -r patch_ms verify_ms < <(sed -nE 's/.*Retpoline: patch ([0-9.]+) ms, verify ([0-9.]+) ms.*/\1 \2/p' "$WORK/dotnet_clean.log" | tail -1)
compile_line=$(sed -nE 's/.*Retpoline: (compiled .*)/\1/p' "$WORK/dotnet_clean.log" | tail -1)

ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '\n%-28s %10s %10s %8s\n' "" "make -j$JOBS" "dotnet" "ratio"
printf '%-28s %9.2fs %9.2fs %7sx   (target <= 1.15x)\n' "clean build" "$T_make_clean" "$T_dotnet_clean" "$(ratio "$T_dotnet_clean" "$T_make_clean")"
printf '%-28s %9.2fs %9.2fs %7sx\n' "no-op build" "$T_make_noop" "$T_dotnet_noop" "$(ratio "$T_dotnet_noop" "$T_make_noop")"
pv=$(echo "$patch_ms + $verify_ms" | bc -l)
printf '%-28s %s ms patch + %s ms verify = %s ms vs link %s ms: %s%%   (target <= 5%%)\n' "patch+verify / link" \
  "$patch_ms" "$verify_ms" "$pv" "$link_ms" "$(echo "scale=1; 100 * $pv / $link_ms" | bc -l)"
echo "dotnet clean build: $compile_line"

# The floor under the post-link target, on the binary just built: the same engine call in one warm process (tier 1,
# page cache), next to what reading the file and Iced's decoding of its code cost by themselves. FLOOR=0 skips it.
if [[ ${FLOOR:-1} != 0 ]]; then
  dotnet build "$REPO/bench/VerifyFloor/VerifyFloor.csproj" -c Release --artifacts-path "$WORK/floor" -v:q -nologo >/dev/null
  echo
  echo "floor of patch+verify (bench/VerifyFloor: warm process, best of 100):"
  dotnet "$WORK/floor/bin/VerifyFloor/release/VerifyFloor.dll" "$P/bin/Release/bench" "$link_ms"
fi
