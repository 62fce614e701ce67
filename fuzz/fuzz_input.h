/* fuzz_input.h — a libFuzzer input as a file, for the readers that take a path.
 *
 * Each process gets its own directory (on tmpfs where there is one); a named
 * file in it is rewritten with every input and the directory is removed when
 * the process exits. HDF5 resolves the path it opens, so a memfd would not do.
 */
#ifndef EB_FUZZ_INPUT_H
#define EB_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* Writes bytes (size) to the file `name` of this process's directory and
 * returns its path (valid until the next call with the same name). Aborts
 * when the file cannot be written: that is the harness failing, not a finding. */
const char *fuzz_input_file(const char *name, const uint8_t *bytes, size_t size);

/* The path of `rel` inside this process's directory, for a file the target
 * makes itself (a symlink, a folder); the buffer is the caller's. */
void fuzz_input_path(char *buf, size_t cap, const char *rel);

#endif
