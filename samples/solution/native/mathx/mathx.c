/* A function-pointer table: each call goes through __x86_indirect_thunk_<reg>. */
#include "mathx.h"

typedef long (*binary_op)(long, long);

static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }

static const binary_op ops[] = { add, sub, mul };

long mathx_apply(int op, long a, long b)
{
    return ops[(unsigned)op % 3](a, b);
}
