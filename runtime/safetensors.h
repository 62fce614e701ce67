/* safetensors.h — a checked reader and an atomic writer for .safetensors files,
 * plus the small strict JSON reader both the header and diffusers' config.json use.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON, then the data
 * buffer. The JSON maps each tensor name to {"dtype", "shape", "data_offsets"}
 * (byte offsets into the data buffer) and may hold "__metadata__", an object of
 * string → string. Every field is checked before use; a failure is EB_EINPUT
 * with a message naming the file, the tensor key and the problem.
 */
#ifndef EB_SAFETENSORS_H
#define EB_SAFETENSORS_H

#include "runtime/ebcache.h"

#include <stdint.h>

#define EB_ST_MAX_RANK 8
#define EB_ST_MAX_HEADER (100u << 20) /* bytes of header JSON we accept */

/* Every dtype of the format is recognised; only the float ones convert to float32. */
typedef enum {
    EB_DT_F32, EB_DT_F16, EB_DT_BF16, EB_DT_F64, EB_DT_F8_E4M3, EB_DT_F8_E5M2,
    EB_DT_I8, EB_DT_U8, EB_DT_I16, EB_DT_U16, EB_DT_I32, EB_DT_U32, EB_DT_I64, EB_DT_U64, EB_DT_BOOL,
    EB_DT_COUNT
} eb_dtype;

/* "F32", "BF16", ... and the size of one element in bytes. */
const char *eb_dtype_name(eb_dtype t);
int eb_dtype_size(eb_dtype t);

/* Exact half → float conversions, and float → half rounding to nearest even
 * (overflow gives ±inf, NaN stays a quiet NaN with its sign). */
float eb_f16_to_f32(uint16_t h);
float eb_bf16_to_f32(uint16_t h);
uint16_t eb_f32_to_f16(float f);
uint16_t eb_f32_to_bf16(float f);

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

typedef struct {
    const char *name;
    eb_dtype dtype;
    int rank;
    int64_t shape[EB_ST_MAX_RANK];
    uint64_t numel;        /* product(shape)                        */
    uint64_t begin, end;   /* byte range inside the data buffer     */
} eb_st_tensor;

typedef struct eb_st_file eb_st_file;

/* Opens and validates `path` (mapped, so multi-GB files cost no copy).
 * On failure *out is NULL. */
eb_status eb_st_open(eb_st_file **out, const char *path);
/* Same on `size` bytes in memory, which must outlive the handle; `label` names
 * the buffer in messages. */
eb_status eb_st_open_memory(eb_st_file **out, const void *data, size_t size, const char *label);
void eb_st_close(eb_st_file *f);

/* The path or label given at open (for messages). */
const char *eb_st_label(const eb_st_file *f);
/* Tensors are kept sorted by name; i in [0, eb_st_count). */
int eb_st_count(const eb_st_file *f);
const eb_st_tensor *eb_st_tensor_at(const eb_st_file *f, int i);
/* The tensor called `name`, or NULL. */
const eb_st_tensor *eb_st_find(const eb_st_file *f, const char *name);
/* The __metadata__ value of `key`, or NULL. */
const char *eb_st_metadata(const eb_st_file *f, const char *key);

/* Converts tensor `t` (from this file) to float32: dst (n) with n == t->numel.
 * F32, F16 and BF16 convert exactly; other dtypes are EB_EINPUT. */
eb_status eb_st_read_f32(const eb_st_file *f, const eb_st_tensor *t, float *dst, size_t n);

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

typedef struct {
    const char *name;
    eb_dtype dtype;          /* F32, F16 or BF16                           */
    int rank;
    int64_t shape[EB_ST_MAX_RANK];
    const float *data;       /* (product(shape)) values, rounded to dtype  */
} eb_st_entry;

typedef struct { const char *key, *value; } eb_st_meta;

/* Writes the tensors in the given order and the metadata pairs to `path`
 * atomically: a temporary file in the same directory, fsync, rename. On
 * failure nothing is left behind and an existing `path` is untouched. */
eb_status eb_st_write(const char *path, const eb_st_entry *tensors, int n_tensors, const eb_st_meta *meta,
                      int n_meta);

/* ------------------------------------------------------------------------ */
/* JSON reader: a cursor over text, one value pulled at a time (no tree).
 * Every failure is EB_EINPUT "<label>: <scope>: invalid JSON at byte K: ..." */

typedef struct {
    const char *text, *pos, *end;
    const char *label;   /* file name for messages                       */
    char scope[160];     /* what is being read, e.g. "tensor 'x'"; may be "" */
    int depth;
} eb_json;

void eb_json_init(eb_json *j, const char *text, size_t len, const char *label);
/* Fails with the label, scope and current byte offset in the message. */
eb_status eb_json_fail(const eb_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Next member of an object: call with *count = 0 at the '{'. Sets *key to a
 * malloc'd key (caller frees) positioned before its value, or NULL at the '}'. */
eb_status eb_json_member(eb_json *j, int *count, char **key);
/* Next element of an array: call with *count = 0 at the '['; *more = 0 at the ']'. */
eb_status eb_json_element(eb_json *j, int *count, int *more);
/* A string value, malloc'd and NUL-terminated (escapes decoded, \u0000 rejected). */
eb_status eb_json_string(eb_json *j, char **out);
/* An integer literal (no fraction or exponent) that fits int64. */
eb_status eb_json_int(eb_json *j, int64_t *out);
/* Skips any one value (depth-limited). */
eb_status eb_json_skip(eb_json *j);
/* Only whitespace may remain. */
eb_status eb_json_finish(eb_json *j);
/* The next significant character, or 0 at the end. */
char eb_json_peek(eb_json *j);

#endif
