/* Engine test fixture: a 1.2 MB read-only table, so the linked file is larger than 1 MiB and the engine's
 * verify takes its partial-read path (it loads only code, symbols, notes, relocations and line tables). */
const char big_table[1200000] = { 1 };
