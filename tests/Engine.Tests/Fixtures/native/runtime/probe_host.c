/* A program linked against libprobe.so (DT_NEEDED): the library patches its own thunks before this runs. */
void libprobe_report(const char *who);
int main(void) { libprobe_report("lib"); return 0; }
