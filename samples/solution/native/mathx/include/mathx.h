#ifndef MATHX_H
#define MATHX_H
/* op: 0 add, 1 subtract, 2 multiply. */
long mathx_apply(int op, long a, long b);
#endif
