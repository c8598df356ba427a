/* A function-pointer dispatch table: the kind of indirect call retpolines exist for. */
#include <stdio.h>
#include "shapes.h"

typedef long (*binary_op)(long, long);

static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }

static const binary_op ops[] = { add, sub, mul };

long dispatch(int op, long a, long b)
{
    return ops[op % 3](a, b); /* compiled to: call __x86_indirect_thunk_<reg> */
}

int main(void)
{
    long total = 0;
    for (int i = 0; i < 9; i++)
        total += dispatch(i, 7 + i, 3);
    printf("dispatch total: %ld\n", total);
    printf("shape areas: %ld\n", total_area());
    return 0;
}
