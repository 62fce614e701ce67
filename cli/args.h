/* args.h — the long-option parser every subcommand uses. */
#ifndef EB_ARGS_H
#define EB_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* The shipped default model in data/. */
#define EB_DEFAULT_MODEL_FILE "dit_fmnist.safetensors"

typedef struct {
    const char *name;   /* without the leading "--"                     */
    const char *meta;   /* value placeholder for help, NULL for a flag  */
    const char *help;
    const char *value;  /* set by eb_args_parse: the value, or "1" for a given flag */
} eb_opt;

/* Parses argv[1..] ("--name value", "--name=value", "--flag") into opts.
 * Returns 0 on success, 2 after printing a usage error, or -1 after printing
 * the help text (for --help / -h; the caller exits 0). */
int eb_args_parse(int argc, char **argv, eb_opt *opts, int nopts, const char *usage);
/* The option called `name` (must exist in opts). */
const char *eb_arg(const eb_opt *opts, int nopts, const char *name);
/* Gives option `name` the value `v` unless the command line set it. */
void eb_arg_default(eb_opt *opts, int nopts, const char *name, const char *v);

/* Strict conversions of an option value; on failure print
 * "ebcache CMD: --NAME: ..." and return 2. */
int eb_arg_int(const char *cmd, const char *name, const char *value, long min, long max, long *out);
int eb_arg_float(const char *cmd, const char *name, const char *value, double *out);
int eb_arg_u64(const char *cmd, const char *name, const char *value, uint64_t *out);
/* Comma-separated integers in [min, max]; *out malloc'd. */
int eb_arg_int_list(const char *cmd, const char *name, const char *value, long min, long max, int32_t **out, int *n);

/* Prints "ebcache CMD: <eb_last_error()>" and returns the status as exit code. */
int eb_report(const char *cmd, int status);

/* <source tree>/rel for the running binary (bin/ebcache or
 * build/<variant>/ebcache, the tree one or two folders up) into out when it
 * is readable: 1, else 0. */
int eb_tree_path(const char *rel, char *out, size_t cap);

/* $env_var if set, else data/<file> next to the executable (bin/ or
 * build/<variant>/ below the source tree), resolved into path (PATH_MAX
 * bytes); NULL with a message if none. */
const char *eb_data_file_path(const char *env_var, const char *file, char *path);

/* The model path: --model if given, else $EBCACHE_MODEL, else the shipped
 * default model next to the executable (../data/). NULL with a message if none. */
const char *eb_default_model_path(void);

#endif
