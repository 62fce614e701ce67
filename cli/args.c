/* args.c — long options, strict number parsing and the default model path. */
#include "cli/args.h"

#include "runtime/ebcache.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void print_help(const char *usage, const eb_opt *opts, int nopts) {
    printf("%s\n\noptions:\n", usage);
    for (int i = 0; i < nopts; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].meta ? " " : "", opts[i].meta ? opts[i].meta : "");
        printf("  %-26s %s\n", left, opts[i].help);
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

int eb_args_parse(int argc, char **argv, eb_opt *opts, int nopts, const char *usage) {
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            print_help(usage, opts, nopts);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "ebcache %s: unexpected argument '%s' (see --help)\n", argv[0], arg);
            return 2;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        eb_opt *o = NULL;
        for (int i = 0; i < nopts; i++)
            if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) o = &opts[i];
        if (!o) {
            fprintf(stderr, "ebcache %s: unknown option '--%.*s' (see --help)\n", argv[0], (int)len, name);
            return 2;
        }
        if (!o->meta) {
            if (eq) {
                fprintf(stderr, "ebcache %s: --%s takes no value\n", argv[0], o->name);
                return 2;
            }
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (a + 1 < argc) {
            o->value = argv[++a];
        } else {
            fprintf(stderr, "ebcache %s: --%s needs a value %s\n", argv[0], o->name, o->meta);
            return 2;
        }
    }
    return 0;
}

const char *eb_arg(const eb_opt *opts, int nopts, const char *name) {
    for (int i = 0; i < nopts; i++)
        if (!strcmp(opts[i].name, name)) return opts[i].value;
    return NULL;
}

void eb_arg_default(eb_opt *opts, int nopts, const char *name, const char *v) {
    for (int i = 0; i < nopts; i++)
        if (!strcmp(opts[i].name, name) && !opts[i].value) opts[i].value = v;
}

int eb_arg_int(const char *cmd, const char *name, const char *value, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        fprintf(stderr, "ebcache %s: --%s: '%s' is not an integer in [%ld, %ld]\n", cmd, name, value, min, max);
        return 2;
    }
    *out = v;
    return 0;
}

int eb_arg_float(const char *cmd, const char *name, const char *value, double *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v)) {
        fprintf(stderr, "ebcache %s: --%s: '%s' is not a finite number\n", cmd, name, value);
        return 2;
    }
    *out = v;
    return 0;
}

int eb_arg_u64(const char *cmd, const char *name, const char *value, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-') {
        fprintf(stderr, "ebcache %s: --%s: '%s' is not a non-negative integer\n", cmd, name, value);
        return 2;
    }
    *out = v;
    return 0;
}

const char *eb_plural(long n, const char *one, const char *many) { return n == 1 ? one : many; }

void eb_print_line(const char *cmd, const char *kind, const char *msg) {
    fprintf(stderr, "ebcache %s: %s", cmd, kind);
    for (const char *at = msg; *at; at++) {
        const char *close = *at == '`' ? strchr(at + 1, '`') : NULL;
        if (!close) {
            fputc(*at, stderr);
            continue;
        }
        fputs("--", stderr);
        for (at++; at < close; at++) fputc(*at == '_' ? '-' : *at, stderr);
    }
    fputc('\n', stderr);
}

int eb_report(const char *cmd, int status) {
    if (status) eb_print_line(cmd, "", eb_last_error());
    return status;
}

int eb_tree_path(const char *rel, char *out, size_t cap) {
    char exe[PATH_MAX - 64];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return 0;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    /* bin/ebcache and build/<variant>/ebcache both sit below the source tree */
    const char *ups[] = {"/../", "/../../"};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++)
        if (snprintf(out, cap, "%s%s%s", exe, ups[i], rel) < (int)cap && access(out, R_OK) == 0) return 1;
    return 0;
}

const char *eb_data_file_path(const char *env_var, const char *file, char *path) {
    const char *env = getenv(env_var);
    if (env && *env) return env;
    char rel[PATH_MAX], candidate[PATH_MAX];
    if (snprintf(rel, sizeof rel, "data/%s", file) < (int)sizeof rel && eb_tree_path(rel, candidate, sizeof candidate) &&
        realpath(candidate, path))
        return path;
    eb_fail(EB_EINPUT, "no data/%s next to the binary; set %s or pass the path", file, env_var);
    return NULL;
}

const char *eb_default_model_path(void) {
    static char buf[PATH_MAX];
    const char *path = eb_data_file_path("EBCACHE_MODEL", EB_DEFAULT_MODEL_FILE, buf);
    if (!path)
        eb_fail(EB_EINPUT, "no --model given and no default model (data/%s); set EBCACHE_MODEL or pass --model",
                EB_DEFAULT_MODEL_FILE);
    return path;
}

/* What st is, for a message about a file that is not a regular one. */
static const char *file_kind(const struct stat *st) {
    if (S_ISDIR(st->st_mode)) return "a folder";
    if (S_ISCHR(st->st_mode)) return "a character device";
    if (S_ISBLK(st->st_mode)) return "a block device";
    if (S_ISFIFO(st->st_mode)) return "a FIFO";
    if (S_ISSOCK(st->st_mode)) return "a socket";
    return "not a regular file";
}

/* 1 after a message when `input` (or an item of it, when it is a
 * comma-separated list of files) is the file out_st describes. */
static int same_file_as(const char *cmd, const char *output, const struct stat *out_st, const char *input) {
    char item[PATH_MAX];
    for (const char *p = input;;) {
        /* the whole value first: a path may hold a comma */
        const char *end = p == input && access(input, F_OK) == 0 ? p + strlen(p) : strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        struct stat in_st;
        if (len < sizeof item) {
            memcpy(item, p, len);
            item[len] = 0;
            if (stat(item, &in_st) == 0 && in_st.st_dev == out_st->st_dev && in_st.st_ino == out_st->st_ino) {
                fprintf(stderr, "ebcache %s: the output %s is the input %s (the same file): writing it would destroy "
                                "the input; choose another output\n",
                        cmd, output, item);
                return 1;
            }
        }
        if (!end || !*end) return 0;
        p = end + 1;
    }
}

static int check_output(const char *cmd, const char *output, int want_dir, const char *const *inputs, int ninputs) {
    struct stat st;
    if (!output || stat(output, &st) != 0) return 0; /* a new file destroys nothing */
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        fprintf(stderr, "ebcache %s: the output %s exists and is %s, not a %s: refusing to replace it\n", cmd, output,
                S_ISREG(st.st_mode) ? "a regular file" : file_kind(&st), want_dir ? "folder" : "regular file");
        return 2;
    }
    for (int i = 0; i < ninputs; i++)
        if (inputs[i] && same_file_as(cmd, output, &st, inputs[i])) return 2;
    return 0;
}

int eb_output_check(const char *cmd, const char *output, const char *const *inputs, int ninputs) {
    return check_output(cmd, output, 0, inputs, ninputs);
}

int eb_output_dir_check(const char *cmd, const char *dir, const char *const *inputs, int ninputs) {
    return check_output(cmd, dir, 1, inputs, ninputs);
}

const char *eb_model_input(const eb_opt *opts, int nopts) {
    const char *given = eb_arg(opts, nopts, "model");
    return given ? given : eb_default_model_path();
}
