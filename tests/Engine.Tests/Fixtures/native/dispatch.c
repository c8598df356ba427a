/* Engine test fixture: a C program whose indirect branches a retpoline build routes through thunks.
 * - dispatch(): a call through a function-pointer table (call *%reg -> __x86_indirect_thunk_<reg>)
 * - classify(): a dense switch that GCC -O2 turns into a jump table (jmp *%reg -> thunk)
 * The answer depends on argc so nothing is folded at compile time; run with no arguments it prints
 * the value PatchTests expect (ExpectedOutput in FixtureSet.cs). */
#include <stdio.h>

typedef long (*op_fn)(long, long);

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }
static long op_xor(long a, long b) { return a ^ b; }

/* Not static and not const: the compiler cannot devirtualise the calls. */
op_fn ops[4] = { op_add, op_sub, op_mul, op_xor };

__attribute__((noinline)) long dispatch(int i, long a, long b)
{
    return ops[i & 3](a, b);
}

__attribute__((noinline)) long classify(int k)
{
    switch (k) {
    case 0: return 11;
    case 1: return 23;
    case 2: return 37;
    case 3: return 41;
    case 4: return 53;
    case 5: return 67;
    case 6: return 79;
    case 7: return 83;
    case 8: return 97;
    case 9: return 101;
    default: return -1;
    }
}

int main(int argc, char **argv)
{
    (void)argv;
    long sum = 0;
    for (int i = 0; i < 12; i++)
        sum += dispatch(i, i + 1, argc + 1) + classify(i + argc - 1);
    printf("dispatch %ld\n", sum);
    return 0;
}
