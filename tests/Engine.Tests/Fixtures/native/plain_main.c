/* Engine test fixture: a main with no indirect branch of its own, for the thunk-problem fixtures. */
#include <stdio.h>

int main(void)
{
    puts("plain");
    return 0;
}
