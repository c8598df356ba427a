/* Engine test fixture for clang -mretpoline: clang emits its own __llvm_retpoline_r11 (21-byte layout). */
#include <stdio.h>

typedef long (*op_fn)(long);

static long inc(long v) { return v + 1; }
static long dbl(long v) { return v * 2; }

op_fn llvm_ops[2] = { inc, dbl };

__attribute__((noinline)) long llvm_dispatch(int i, long v)
{
    return llvm_ops[i & 1](v);
}

int main(int argc, char **argv)
{
    (void)argv;
    printf("llvm %ld\n", llvm_dispatch(argc, 20) + llvm_dispatch(argc + 1, 20));
    return 0;
}
