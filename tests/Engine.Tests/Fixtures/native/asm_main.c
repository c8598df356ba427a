/* Engine test fixture: runs the hand-written jump table so the program does something observable. */
#include <stdio.h>

long asm_jump_table(unsigned long k);

int main(int argc, char **argv)
{
    (void)argv;
    printf("table %ld\n", asm_jump_table((unsigned long)argc + 1));
    return 0;
}
