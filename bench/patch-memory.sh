#!/usr/bin/env bash
# Peak memory of `retpoline patch` against the size of the file it patches, and against `retpoline verify` of the
# same file in the same run. Patch streams (the output is the input with the patched ranges substituted, copied
# through a 1 MiB buffer), so its peak RSS should be verify's plus a small constant, whatever the file's size.
# The input is a real program linked with the shipped thunks plus a large non-loaded section (objcopy
# --add-section), the shape of a binary with big debug info. See bench/README.md.
#
#   bench/patch-memory.sh [SIZE_MB]     # default 1024
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mb=${1:-1024}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }

echo "building retpoline ..." >&2
dotnet build "$repo/Tool/Retpoline.Tool.csproj" -c Release -o "$work/tool" --artifacts-path "$work/artifacts" -nologo -v quiet >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; exit 2; }
retpoline=(dotnet "$work/tool/retpoline.dll")

cat >"$work/app.c" <<'C'
#include <stdio.h>
typedef int (*op)(int);
static int twice(int x) { return 2 * x; }
op ops[] = { twice };
int main(int argc, char **argv) { (void)argv; printf("%d\n", ops[argc - 1](21)); return 0; }
C
gcc -O2 -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt -Wl,-z,now \
  "$work/app.c" "$repo/native/retpoline_thunks.S" -o "$work/small"
truncate -s "${size_mb}M" "$work/padding"
objcopy --add-section ".rpl_padding=$work/padding" "$work/small" "$work/large"
rm "$work/padding"
[ "$("$work/large")" = 42 ] || { echo "the generated program does not run" >&2; exit 2; }

# Peak RSS in KiB of one command (GNU time's %M); exit 1 from verify (findings) is not a failure.
peak() { /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/err" || [ $? -eq 1 ] || { cat "$work/err" >&2; exit 2; }; cat "$work/rss"; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

cat "$work/large" >/dev/null # warm page cache for both
small_bytes=$(stat -c %s "$work/small"); large_bytes=$(stat -c %s "$work/large")
verify_small=$(peak "${retpoline[@]}" verify "$work/small")
patch_small=$(peak "${retpoline[@]}" patch --vendor None "$work/small")
verify_large=$(peak "${retpoline[@]}" verify "$work/large")
patch_large=$(peak "${retpoline[@]}" patch --vendor None "$work/large")
patch_back=$(peak "${retpoline[@]}" patch --vendor Generic "$work/large")
patch_time=$(seconds "${retpoline[@]}" patch --vendor None "$work/large")
# Every patch above really wrote the file (None, Generic, None): the last one left the None form.
nones=$("${retpoline[@]}" verify --json "$work/large" | grep -c '"form": "None"' || true)
[ "$nones" = 30 ] || { echo "the large file is not in the None form after the patches ($nones None thunks)" >&2; exit 2; }

mb() { echo "scale=1; $1 / 1024" | bc; }
printf '%-44s %12s %12s\n' "command" "file (MB)" "peak RSS (MB)"
printf '%-44s %12s %12s\n' "retpoline verify small" "$(echo "scale=2; $small_bytes/1048576" | bc)" "$(mb "$verify_small")"
printf '%-44s %12s %12s\n' "retpoline patch --vendor None small" "$(echo "scale=2; $small_bytes/1048576" | bc)" "$(mb "$patch_small")"
printf '%-44s %12s %12s\n' "retpoline verify large" "$(echo "scale=0; $large_bytes/1048576" | bc)" "$(mb "$verify_large")"
printf '%-44s %12s %12s\n' "retpoline patch --vendor None large" "$(echo "scale=0; $large_bytes/1048576" | bc)" "$(mb "$patch_large")"
printf '%-44s %12s %12s\n' "retpoline patch --vendor Generic large" "$(echo "scale=0; $large_bytes/1048576" | bc)" "$(mb "$patch_back")"
echo
echo "patch large / verify large   = $(echo "scale=2; $patch_large / $verify_large" | bc)x"
echo "patch large - patch small    = $(mb $((patch_large - patch_small))) MB for $(echo "scale=0; ($large_bytes-$small_bytes)/1048576" | bc) MB more file"
printf "patch large peak / file size = %.4f\n" "$(echo "scale=6; $patch_large * 1024 / $large_bytes" | bc)"
echo "patch large wall time        = ${patch_time}s (writes and fsyncs the whole file)"
