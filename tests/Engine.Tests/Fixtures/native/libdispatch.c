/* Engine test fixture: the same dispatch shapes in a shared library (-fPIC -shared). */
typedef long (*op_fn)(long, long);

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }

op_fn lib_ops[3] = { op_add, op_sub, op_mul };

long lib_dispatch(int i, long a, long b)
{
    return lib_ops[i % 3](a, b);
}

long lib_classify(int k)
{
    switch (k) {
    case 0: return 3;
    case 1: return 5;
    case 2: return 7;
    case 3: return 11;
    case 4: return 13;
    case 5: return 17;
    case 6: return 19;
    case 7: return 23;
    default: return 0;
    }
}

/* Calls between exported functions of a -fPIC library go through the PLT (they can be interposed):
 * without -fno-plt, lib_total reaches lib_dispatch@plt and lib_classify@plt, which are class Plt. */
long lib_total(int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += lib_dispatch(i, i + 2, 3) + lib_classify(i);
    return sum;
}
