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

/* `one` when n is 1, else `many`: printf("%d %s", n, eb_plural(n, "sample", "samples")). */
const char *eb_plural(long n, const char *one, const char *many);

/* Guards against an output that would destroy an input. 0 when writing
 * `output` (NULL: nothing to check) is safe, else 2 after printing
 * "ebcache CMD: ...": refused when output names the same file as one of the
 * inputs (same device and inode, so a hard link or another spelling of the
 * path counts; an input may be a comma-separated list of files), or when it
 * exists and is not a regular file (the temp-file rename would replace a
 * device, FIFO or folder). NULL inputs and inputs that do not exist are
 * skipped. eb_output_dir_check is the same for an output folder: one that
 * exists must be a folder, and it may not be one of the inputs. Pass the
 * inputs with EB_INPUTS(a, b, ...). */
int eb_output_check(const char *cmd, const char *output, const char *const *inputs, int ninputs);
int eb_output_dir_check(const char *cmd, const char *dir, const char *const *inputs, int ninputs);
#define EB_INPUTS(...) \
    (const char *const[]){__VA_ARGS__}, (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
/* The model a command will load: --model if given, else the shipped default
 * model (NULL when there is none); for eb_output_check. */
const char *eb_model_input(const eb_opt *opts, int nopts);

/* Prints "ebcache CMD: KIND" and msg on stderr, each `field` the experiment
 * layer names (pipeline/run.h) written as the option --field (underscores
 * as dashes). */
void eb_print_line(const char *cmd, const char *kind, const char *msg);
/* Prints "ebcache CMD: <eb_last_error()>" (eb_print_line) and returns the status as exit code. */
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
