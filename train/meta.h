/* meta.h — the string metadata of the files train/ writes (training
 * checkpoints, the EMA export, classifiers): building the pairs for
 * eb_st_write and reading typed values back with messages that name the file
 * and the key. Numbers are written so that they read back exactly (doubles in
 * %.17g). */
#ifndef EB_TRAIN_META_H
#define EB_TRAIN_META_H

#include <stdint.h>

#include "runtime/safetensors.h"

#define EB_META_MAX 32
#define EB_META_VALUE_LEN 40

/* Up to EB_META_MAX pairs; the values live in the list itself. */
typedef struct {
    eb_st_meta pairs[EB_META_MAX];
    char values[EB_META_MAX][EB_META_VALUE_LEN];
    int n;
    int overflow; /* pairs that did not fit (eb_meta_check reports them) */
} eb_meta_list;

/* Appends key = the printf of fmt (truncated to EB_META_VALUE_LEN − 1
 * characters). `key` must outlive the list. A full list counts the pair in
 * l->overflow instead. */
void eb_meta_add(eb_meta_list *l, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends n caller-owned pairs (their strings must outlive the list); those
 * that do not fit count in l->overflow. */
void eb_meta_append(eb_meta_list *l, const eb_st_meta *pairs, int n);

/* EB_EINPUT naming `path` (the file about to be written) when pairs did not fit. */
eb_status eb_meta_check(const eb_meta_list *l, const char *path);

/* EB_EINPUT unless metadata 'format' of f is `format`; `what` names the kind
 * of file in the message ("an ebcache training checkpoint"). */
eb_status eb_meta_check_format(const eb_st_file *f, const char *format, const char *what);

/* Metadata `key` of f, parsed; EB_EINPUT naming the file and the key when it
 * is missing or malformed. */
eb_status eb_meta_string(const eb_st_file *f, const char *key, const char **out);
eb_status eb_meta_int64(const eb_st_file *f, const char *key, int64_t min, int64_t max, int64_t *out); /* in [min, max] */
eb_status eb_meta_int(const eb_st_file *f, const char *key, int min, int max, int *out);               /* in [min, max] */
eb_status eb_meta_double(const eb_st_file *f, const char *key, double *out);                           /* finite       */
eb_status eb_meta_u64(const eb_st_file *f, const char *key, uint64_t *out);                            /* no sign      */
eb_status eb_meta_bool(const eb_st_file *f, const char *key, int *out);                                /* true / false */

#endif
