/* meta.h — the string metadata of the files train/ writes (training
 * checkpoints, the EMA export, classifiers): building the pairs for
 * eb_st_write and reading typed values back with messages that name the file
 * and the key. Numbers are written so that they read back exactly (doubles in
 * %.17g). */
#ifndef EB_TRAIN_META_H
#define EB_TRAIN_META_H

#include <stddef.h>
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

/* A struct's fields as metadata keys: one table serves the writer and the
 * reader, so a key and its field cannot drift apart. */
typedef enum { EB_META_INT, EB_META_BOOL, EB_META_DOUBLE, EB_META_U64 } eb_meta_type;
typedef struct {
    const char *key;
    size_t offset;     /* of the field in its struct (offsetof)                  */
    eb_meta_type type; /* int, int 0/1 as "false"/"true", double, uint64_t        */
    int min, max;      /* an EB_META_INT's range when read                       */
} eb_meta_field;

/* Table rows for field `field` of struct `type`, keyed by the field's name. */
#define EB_META_INT_FIELD(type, field, lo, hi) {#field, offsetof(type, field), EB_META_INT, lo, hi}
#define EB_META_FIELD(type, field, kind) {#field, offsetof(type, field), kind, 0, 0}
#define EB_META_COUNT(table) ((int)(sizeof table / sizeof table[0]))

/* Appends the n fields of the struct at `base`. */
void eb_meta_add_fields(eb_meta_list *l, const void *base, const eb_meta_field *fields, int n);

/* Reads the n fields of the struct at `base` from f; EB_EINPUT naming the
 * first key that is missing, malformed or out of range. */
eb_status eb_meta_read_fields(const eb_st_file *f, void *base, const eb_meta_field *fields, int n);

#endif
