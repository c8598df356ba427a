#!/usr/bin/env bash
# bench/cmake-vs-cmake.sh — `dotnet build` of a CMake tree through Retpoline.Sdk (configure, build, File API, patch,
# verify) against plain `cmake` + `cmake --build` of the same tree with the same toolchain file (so the same compilers,
# mitigation flags and thunk object), measured in the same run:
#   clean build  (after `dotnet clean` / removing the build tree: both configure again)   target: <= 1.10x
#   no-op build  (nothing changed)                                   target: <= an empty C# library's no-op + 0.3 s
# Each figure is the best of RUNS runs, the SDK's and plain CMake's alternating.
#
# Usage: bench/cmake-vs-cmake.sh [FILES [RUNS]]   (FILES >= 100, default 120; RUNS default 3)
# Env:   JOBS=2 (cmake --build --parallel for the plain build; the SDK asks MSBuild for cores)
#        RETPOLINE_FEED=dir-with-Retpoline.Sdk.version (default: pack the repo into a temp dir)  KEEP=1 keeps the work dir
set -euo pipefail

FILES=${1:-120}
RUNS=${2:-${RUNS:-3}}
JOBS=${JOBS:-2}
(( FILES >= 100 )) || { echo "FILES must be >= 100" >&2; exit 2; }
for tool in cmake gcc; do command -v $tool >/dev/null || { echo "$tool not found (apt-get install $tool)" >&2; exit 2; }; done

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/retpoline-cmake-bench-XXXXXX)
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_PACKAGES="$work/packages" MSBUILDDISABLENODEREUSE=1
unset CFLAGS CXXFLAGS LDFLAGS CC CXX
source "$repo/bench/lib/sdk.sh"
pack_sdk

# --- the tree: FILES C files in a static library, a shared library over it, an executable over both ---------------
src="$work/tree"
mkdir -p "$src/lib"
for ((i = 0; i < FILES; i++)); do
  cat > "$src/lib/unit_$i.c" <<C
typedef long (*op_$i)(long);
static long a_$i(long x) { return x * 3 + $i; }
static long b_$i(long x) { return (x << 2) ^ $i; }
static const op_$i ops_$i[] = { a_$i, b_$i };
long unit_$i(long x) { long t = x; for (int r = 0; r < 20; r++) { t = ops_$i[(t ^ r) & 1](t); switch (t & 7) { case 0: t += 5; break; case 1: t ^= 9; break; case 3: t -= r; break; default: t = ~t; } } return t; }
C
done
{
  for ((i = 0; i < FILES; i++)); do echo "long unit_$i(long);"; done
  echo 'long all_units(long x) { long t = x;'
  for ((i = 0; i < FILES; i++)); do echo "  t ^= unit_$i(t);"; done
  echo '  return t; }'
} > "$src/shared.c"
printf '#include <stdio.h>\nlong all_units(long);\nint main(void) { printf("%%ld\\n", all_units(1)); return 0; }\n' > "$src/main.c"
cat > "$src/CMakeLists.txt" <<C
cmake_minimum_required(VERSION 3.16)
project(bench C)
file(GLOB units lib/*.c)
add_library(units STATIC \${units})
set_target_properties(units PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(bundle SHARED shared.c)
target_link_libraries(bundle PRIVATE units)
add_executable(app main.c)
target_link_libraries(app bundle)
C
proj="$work/proj"
mkdir -p "$proj"
cat > "$proj/bench.nativeproj" <<P
<Project Sdk="Retpoline.Sdk/$version">
  <PropertyGroup>
    <Configuration>Release</Configuration>
    <CMakeSourceDirectory>../tree</CMakeSourceDirectory>
  </PropertyGroup>
</Project>
P
cat > "$proj/NuGet.config" <<X
<configuration>
  <config><add key="globalPackagesFolder" value="$work/packages" /></config>
  <packageSources><clear /><add key="bench" value="$feed" /></packageSources>
</configuration>
X
empty="$work/empty"
mkdir -p "$empty"
cat > "$empty/empty.csproj" <<P
<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup></Project>
P

now() { date +%s.%N; }
elapsed() { # elapsed CMD...: wall time in seconds
  local t0 t1; t0=$(now); "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }; t1=$(now)
  echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}
min() { echo "$1 $2" | awk '{ print ($1 < $2 ? $1 : $2) }'; }

# Warm everything once: restore, the probe cache, the toolchain file the plain build reuses.
dotnet build "$proj/bench.nativeproj" -nologo -v:q >"$work/first.log" 2>&1 || { cat "$work/first.log" >&2; exit 1; }
dotnet build "$empty/empty.csproj" -nologo -v:q >/dev/null
toolchain="$proj/obj/Release/retpoline/cmake-toolchain.cmake"
generator=$(grep '^CMAKE_GENERATOR:INTERNAL=' "$proj/obj/Release/cmake/CMakeCache.txt" | cut -d= -f2)

sdk_build() { dotnet build "$proj/bench.nativeproj" -nologo -v:q --no-restore; }
plain_configure_build() { cmake -S "$src" -B "$work/plain" -G "$generator" -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release && cmake --build "$work/plain" --parallel "$JOBS"; }
plain_build() { cmake --build "$work/plain" --parallel "$JOBS"; }
empty_build() { dotnet build "$empty/empty.csproj" -nologo -v:q --no-restore; }

# Runs alternate (SDK, plain, SDK, plain, ...) so a busy moment of the machine falls on both; the best of each.
# Clean: `dotnet clean` / removing the build tree are not timed; both then configure from nothing and build.
c_sdk=1e9 c_plain=1e9 n_sdk=1e9 n_plain=1e9 n_empty=1e9
for ((r = 0; r < RUNS; r++)); do
  dotnet clean "$proj/bench.nativeproj" -nologo -v:q -c Release >/dev/null
  c_sdk=$(min "$c_sdk" "$(elapsed sdk_build)")
  rm -rf "$work/plain"
  c_plain=$(min "$c_plain" "$(elapsed plain_configure_build)")
done
for ((r = 0; r < RUNS; r++)); do
  n_sdk=$(min "$n_sdk" "$(elapsed sdk_build)")
  n_plain=$(min "$n_plain" "$(elapsed plain_build)")
  n_empty=$(min "$n_empty" "$(elapsed empty_build)")
done
"$proj/obj/Release/cmake/app" >/dev/null

awk -v files="$FILES" -v runs="$RUNS" -v gen="$generator" -v cs="$c_sdk" -v cp="$c_plain" -v ns="$n_sdk" -v np="$n_plain" -v ne="$n_empty" 'BEGIN {
  printf "CMake tree: %d C files (static + shared + executable), %s, Release, best of %d alternating runs\n", files, gen, runs
  printf "clean: dotnet build %.2f s  cmake configure+build %.2f s  ratio %.2fx  (target <= 1.10x)\n", cs, cp, cs / cp
  printf "no-op: dotnet build %.2f s  cmake --build %.2f s  empty C# library no-op %.2f s  (target <= %.2f s: %s)\n", ns, np, ne, ne + 0.3, (ns <= ne + 0.3 ? "met" : "missed")
}'
