/* A shared library linked with native/retpoline_runtime.c (-DRETPOLINE_RUNTIME_SHARED): its own record and thunks,
   seen from whoever loads it (a program linked against it, or a C# process through NativeLibrary.Load). */
#include "probe.h"

__attribute__((visibility("default"))) void libprobe_report(const char *who) { probe_report(who); }
__attribute__((visibility("default"))) int libprobe_copy(unsigned char *record, unsigned char *bodies) { return probe_copy(record, bodies); }
__attribute__((visibility("default"))) int libprobe_dispatch(int rounds) { return probe_dispatch(rounds); }
