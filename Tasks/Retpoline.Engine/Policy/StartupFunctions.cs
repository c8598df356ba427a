namespace Retpoline.Policy;

/// <summary>
/// The toolchain's own startup and teardown code that a correct retpoline link still leaves with indirect branches
/// (DESIGN.md §3, seen with GCC 12 / glibc 2.36 and clang-14 / lld-14 on Debian 12). These come from crt1.o, crti.o,
/// crtbegin*.o and (older glibc) libc_nonshared.a: objects the user does not compile, so they cannot carry
/// retpolines. The list is exact on purpose: a user function with any other name is user code.
/// </summary>
public static class StartupFunctions
{
    public static readonly IReadOnlySet<string> Names = new HashSet<string>(StringComparer.Ordinal)
    {
        "_start",                  // crt1.o: call *__libc_start_main@GOTPCREL(%rip)
        "_init",                   // crti.o: call *%rax (__gmon_start__ when profiling)
        "_fini",                   // crti.o
        "deregister_tm_clones",    // crtbegin.o: jmp *%rax (_ITM_deregisterTMCloneTable)
        "register_tm_clones",      // crtbegin.o: jmp *%rax (_ITM_registerTMCloneTable)
        "__do_global_dtors_aux",   // crtbegin.o: calls __cxa_finalize through the PLT/GOT
        "frame_dummy",             // crtbegin.o
        "__libc_csu_init",         // libc_nonshared.a before glibc 2.34: call *(%r15,%rbx,8)
        "__libc_csu_fini",         // libc_nonshared.a before glibc 2.34
        "_dl_relocate_static_pie", // crt1.o (static-pie)
    };

    public static bool Contains(string function) => Names.Contains(function);
}
