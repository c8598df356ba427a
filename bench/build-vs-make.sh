#!/usr/bin/env bash
# `dotnet build` of a generated 60-file C project with the packed SDK, against `make -j2` with the same compiler,
# the same flags and the same thunk file, measured in the same run: clean and no-op builds, best of N, and the
# share of patch+verify in the link step (from the task's own timing line at -v:n). See bench/README.md.
#
#   bench/build-vs-make.sh [FILES] [RUNS]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
files=${1:-60}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for cmd in dotnet gcc make awk; do command -v "$cmd" >/dev/null || { echo "bench: $cmd is required" >&2; exit 2; }; done

echo "packing the SDK ..." >&2
dotnet pack "$repo/Tasks/Retpoline.Tasks/Retpoline.Tasks.csproj" -c Release -o "$work/feed" -nologo -v quiet >"$work/pack.log" 2>&1 \
  || { cat "$work/pack.log" >&2; exit 2; }

# ---- the project: FILES translation units, each with some real work and a function-pointer table ----------------
proj="$work/proj"
mkdir -p "$proj/src"
cat >"$proj/src/common.h" <<'H'
#ifndef COMMON_H
#define COMMON_H
typedef long (*op_fn)(long, long);
long unit_entry(int unit, long x);
H
for ((i = 0; i < files; i++)); do
  echo "long unit_$i(long x);" >>"$proj/src/common.h"
  {
    echo '#include "common.h"'
    for ((k = 0; k < 12; k++)); do
      echo "static long f${k}(long a, long b) { long r = a; for (int j = 0; j < (int)(b & 15); j++) r = r * 31 + (a ^ (j + $k)); return r; }"
    done
    echo "static const op_fn table[] = { f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11 };"
    echo "long unit_$i(long x) { long acc = 0; for (int n = 0; n < 12; n++) acc += table[(x + n) % 12](x + n, n + $i); return acc; }"
  } >"$proj/src/unit_$i.c"
done
echo "#endif" >>"$proj/src/common.h"
{
  echo '#include <stdio.h>'
  echo '#include "common.h"'
  echo 'int main(void) { long t = 0;'
  for ((i = 0; i < files; i++)); do echo "  t += unit_$i($i);"; done
  echo '  printf("%ld\n", t); return 0; }'
} >"$proj/src/main.c"

cat >"$proj/bench.nativeproj" <<'P'
<Project Sdk="Retpoline.Sdk/1.0.0">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <Configuration>Release</Configuration>
  </PropertyGroup>
</Project>
P
cat >"$proj/NuGet.config" <<C
<configuration>
  <config><add key="globalPackagesFolder" value="$work/packages" /></config>
  <packageSources><clear /><add key="bench" value="$work/feed" /></packageSources>
</configuration>
C

# ---- the same build in make: same gcc, same flags (as the SDK prints them at -v:n), same thunks -----------------
thunks="$repo/native/retpoline_thunks.S"
cat >"$proj/Makefile" <<M
CFLAGS = -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt -O2 -g -ffile-prefix-map=$proj=. -MMD
LDFLAGS = -fno-plt -Wl,-z,now -Wl,-z,relro
SRCS = \$(wildcard src/*.c)
OBJS = \$(patsubst src/%.c,mk/%.o,\$(SRCS)) mk/retpoline_thunks.o
mk/app: \$(OBJS)
	gcc \$(LDFLAGS) \$^ -o \$@
mk/%.o: src/%.c | mk
	gcc \$(CFLAGS) -c \$< -o \$@
mk/retpoline_thunks.o: $thunks | mk
	gcc \$(CFLAGS) -c \$< -o \$@
mk:
	mkdir -p mk
-include \$(OBJS:.o=.d)
M

cd "$proj"
dotnet restore bench.nativeproj -nologo -v quiet >/dev/null   # restore is not part of either build
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk 'NR == 1 || $1 < m { m = $1 } END { printf "%.3f", m }'; }

dotnet_clean=(); dotnet_noop=(); make_clean=(); make_noop=(); shares=()
for ((r = 1; r <= runs; r++)); do
  rm -rf bin obj/Release mk
  t0=$(now); dotnet build bench.nativeproj --no-restore -nologo -v:n >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 2; }; t1=$(now)
  dotnet_clean+=("$(elapsed "$t0" "$t1")")
  t0=$(now); dotnet build bench.nativeproj --no-restore -nologo -v:q >/dev/null 2>&1; t1=$(now)
  dotnet_noop+=("$(elapsed "$t0" "$t1")")
  # patch+verify against link, both timed inside the same build
  pv=$(grep -oE 'patch [0-9]+ ms, verify [0-9]+ ms' "$work/build.log" | awk '{ print $2 + $5 }')
  link=$(grep -oE 'LinkNativeTask.*' "$work/build.log" | head -1 || true)
  t0=$(now); make -j2 -s >/dev/null; t1=$(now)
  make_clean+=("$(elapsed "$t0" "$t1")")
  link_s=$( { /usr/bin/time -f %e gcc -fno-plt -Wl,-z,now -Wl,-z,relro mk/*.o -o mk/app.relink >/dev/null; } 2>&1 )
  shares+=("$(awk -v p="$pv" -v l="$link_s" 'BEGIN { printf "%.1f", (l > 0 ? 100 * p / 1000 / l : 0) }')")
  t0=$(now); make -j2 -s >/dev/null; t1=$(now)
  make_noop+=("$(elapsed "$t0" "$t1")")
done

[ "$(./bin/Release/bench)" = "$(./mk/app)" ] || { echo "bench: the two builds print different results" >&2; exit 2; }

dc=$(printf '%s\n' "${dotnet_clean[@]}" | min); dn=$(printf '%s\n' "${dotnet_noop[@]}" | min)
mc=$(printf '%s\n' "${make_clean[@]}" | min); mn=$(printf '%s\n' "${make_noop[@]}" | min)
share=$(printf '%s\n' "${shares[@]}" | min)
echo
echo "project:  $files C files + main + thunks, gcc $(gcc -dumpfullversion), $(nproc) cores, best of $runs"
printf '%-28s %10s %10s %8s\n' "" "dotnet" "make -j2" "ratio"
printf '%-28s %9ss %9ss %7sx\n' "clean build" "$dc" "$mc" "$(awk -v a="$dc" -v b="$mc" 'BEGIN { printf "%.2f", a / b }')"
printf '%-28s %9ss %9ss %7sx\n' "no-op build" "$dn" "$mn" "$(awk -v a="$dn" -v b="$mn" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }')"
echo "patch+verify = ${share}% of the link step (target <= 5%)"
echo "(targets: clean <= 1.15x make; the no-op figure is mostly MSBuild's own start-up: no compiler runs)"
