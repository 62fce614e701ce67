/* inception.c — the FID InceptionV3 on the backend's image operations (inception.h).
 *
 * The tensor table holds the file tensors (per BasicConv its conv weight and
 * the four BatchNorm tensors, then fc.weight); set_tensors folds each
 * BatchNorm into its convolution, w·γ/√(var + eps) and β − mean·γ/√(var + eps),
 * into one device buffer. A block's branches write their last convolution
 * straight into their channel slice of the block output (conv2d's out_ctot),
 * so the concatenations cost nothing; the ReLU then runs once over the whole
 * block output (every slice is a ReLU output or a max pool of one, so the
 * result is the same).
 */
#include "analyze/inception.h"

#include "runtime/backend.h"
#include "runtime/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CONVS 94  /* stem 5, A 3×7, B 4, C 4×10, D 6, E 2×9 */
#define N_BLOCKS 11 /* Mixed_5b … Mixed_7c */
#define N_TENSORS (5 * N_CONVS + 1)
#define MAX_ACT ((size_t)64 * 147 * 147) /* floats per image of the largest activation (Conv2d_2b_3x3's) */
#define N_BUFS 5                         /* block input and output, three branch temporaries */
#define SPATIAL_BLOCK 6                  /* Mixed_6d, whose branch1x1 is the TF graph's mixed_6/conv */
#define SPATIAL_SIDE 17
#define SPATIAL_CHANNELS 7

typedef struct {
    int ic, oc, kh, kw, stride, ph, pw;
    int ih;       /* input side at a 299² image (for the MAC count) */
    int table;    /* index of its conv.weight in the tensor table; the BN tensors follow */
    size_t w, b;  /* folded weight (oc, ic, kh, kw) and bias (oc): offsets in the slab */
} inc_conv;

typedef enum { BLOCK_A, BLOCK_B, BLOCK_C, BLOCK_D, BLOCK_E_AVG, BLOCK_E_MAX } block_kind;

typedef struct {
    block_kind kind;
    int first;     /* its convolutions are convs[first …] in the layout order of its spec */
    int cin, cout; /* channels in and out */
} inc_block;

struct eb_inception {
    const eb_backend *be;
    int with_fc;
    eb_inception_tensor tensors[N_TENSORS];
    int n_tensors;
    size_t table_floats;
    inc_conv convs[N_CONVS];
    int n_convs;
    inc_block blocks[N_BLOCKS];
    int n_blocks;
    size_t slab_floats, fc; /* fc: offset of fc.weight (1008, 2048) in the slab */
    float *slab;
    /* activations, allocated at the first forward: the raw input chunk and N_BUFS of chunk × MAX_ACT */
    float *in, *buf[N_BUFS];
    size_t in_floats;
};

/* ------------------------------------------------------------------------ */
/* The architecture                                                          */

/* A branch convolution of a block: channel counts CIN (the block's input) and PAR (its parameter:
 * the pool features of A, c7 of C) stand for themselves. */
enum { CIN = -1, PAR = -2 };
typedef struct { const char *leaf; int in, out, kh, kw, stride, ph, pw; } conv_spec;

static const conv_spec spec_a[] = {
    {"branch1x1", CIN, 64, 1, 1, 1, 0, 0},       {"branch5x5_1", CIN, 48, 1, 1, 1, 0, 0},
    {"branch5x5_2", 48, 64, 5, 5, 1, 2, 2},      {"branch3x3dbl_1", CIN, 64, 1, 1, 1, 0, 0},
    {"branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},   {"branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1},
    {"branch_pool", CIN, PAR, 1, 1, 1, 0, 0},
};
static const conv_spec spec_b[] = {
    {"branch3x3", CIN, 384, 3, 3, 2, 0, 0},      {"branch3x3dbl_1", CIN, 64, 1, 1, 1, 0, 0},
    {"branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},   {"branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0},
};
static const conv_spec spec_c[] = {
    {"branch1x1", CIN, 192, 1, 1, 1, 0, 0},      {"branch7x7_1", CIN, PAR, 1, 1, 1, 0, 0},
    {"branch7x7_2", PAR, PAR, 1, 7, 1, 0, 3},    {"branch7x7_3", PAR, 192, 7, 1, 1, 3, 0},
    {"branch7x7dbl_1", CIN, PAR, 1, 1, 1, 0, 0}, {"branch7x7dbl_2", PAR, PAR, 7, 1, 1, 3, 0},
    {"branch7x7dbl_3", PAR, PAR, 1, 7, 1, 0, 3}, {"branch7x7dbl_4", PAR, PAR, 7, 1, 1, 3, 0},
    {"branch7x7dbl_5", PAR, 192, 1, 7, 1, 0, 3}, {"branch_pool", CIN, 192, 1, 1, 1, 0, 0},
};
static const conv_spec spec_d[] = {
    {"branch3x3_1", CIN, 192, 1, 1, 1, 0, 0},    {"branch3x3_2", 192, 320, 3, 3, 2, 0, 0},
    {"branch7x7x3_1", CIN, 192, 1, 1, 1, 0, 0},  {"branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3},
    {"branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0},  {"branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0},
};
static const conv_spec spec_e[] = {
    {"branch1x1", CIN, 320, 1, 1, 1, 0, 0},      {"branch3x3_1", CIN, 384, 1, 1, 1, 0, 0},
    {"branch3x3_2a", 384, 384, 1, 3, 1, 0, 1},   {"branch3x3_2b", 384, 384, 3, 1, 1, 1, 0},
    {"branch3x3dbl_1", CIN, 448, 1, 1, 1, 0, 0}, {"branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1},
    {"branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1}, {"branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0},
    {"branch_pool", CIN, 192, 1, 1, 1, 0, 0},
};

static void add_tensor(eb_inception *m, const char *name, const char *leaf, int rank, const int64_t *shape) {
    eb_inception_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s%s%s", name, *leaf ? "." : "", leaf);
    t->rank = rank;
    t->numel = 1;
    for (int r = 0; r < rank; r++) t->numel *= (size_t)(t->shape[r] = shape[r]);
    t->offset = m->table_floats;
    m->table_floats += t->numel;
}

/* A BasicConv `name` reading a side-`ih` input: its five tensors and its folded slab place. */
static void add_conv(eb_inception *m, const char *name, int ic, int oc, int kh, int kw, int stride, int ph, int pw,
                     int ih) {
    static const char *bn[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    inc_conv *c = &m->convs[m->n_convs++];
    *c = (inc_conv){.ic = ic, .oc = oc, .kh = kh, .kw = kw, .stride = stride, .ph = ph, .pw = pw, .ih = ih,
                    .table = m->n_tensors, .w = m->slab_floats};
    add_tensor(m, name, "conv.weight", 4, (int64_t[]){oc, ic, kh, kw});
    for (int i = 0; i < 4; i++) add_tensor(m, name, bn[i], 1, (int64_t[]){oc});
    m->slab_floats += (size_t)oc * ic * kh * kw;
    c->b = m->slab_floats;
    m->slab_floats += (size_t)oc;
}

/* Output side of convolution c on a side-h input (the kernels are square or 1×k / k×1 with
 * matching padding, so both axes agree). */
static int conv_out_side(const inc_conv *c, int h) { return (h + 2 * c->ph - c->kh) / c->stride + 1; }

/* Block `name` on a side-`side` input of cin channels; returns its output side. */
static int add_block(eb_inception *m, block_kind kind, const char *name, int cin, int param, int side) {
    const conv_spec *spec = kind == BLOCK_A ? spec_a : kind == BLOCK_B ? spec_b : kind == BLOCK_C ? spec_c
                          : kind == BLOCK_D ? spec_d : spec_e;
    const int n = kind == BLOCK_A ? 7 : kind == BLOCK_B ? 4 : kind == BLOCK_C ? 10 : kind == BLOCK_D ? 6 : 9;
    inc_block *b = &m->blocks[m->n_blocks++];
    *b = (inc_block){.kind = kind, .first = m->n_convs, .cin = cin};
    int out_side = side;
    for (int i = 0; i < n; i++) {
        const conv_spec *s = &spec[i];
        char full[48];
        snprintf(full, sizeof full, "%s.%s", name, s->leaf);
        int ic = s->in == CIN ? cin : s->in == PAR ? param : s->in;
        int oc = s->out == CIN ? cin : s->out == PAR ? param : s->out;
        add_conv(m, full, ic, oc, s->kh, s->kw, s->stride, s->ph, s->pw, side);
        out_side = conv_out_side(&m->convs[m->n_convs - 1], side);
    }
    /* output channels: the last convolution of each branch, plus the max pool's cin in B and D */
    const inc_conv *c = &m->convs[b->first];
    b->cout = kind == BLOCK_A ? c[0].oc + c[2].oc + c[5].oc + c[6].oc
            : kind == BLOCK_B ? c[0].oc + c[3].oc + cin
            : kind == BLOCK_C ? c[0].oc + c[3].oc + c[8].oc + c[9].oc
            : kind == BLOCK_D ? c[1].oc + c[5].oc + cin
                              : c[0].oc + c[2].oc + c[3].oc + c[6].oc + c[7].oc + c[8].oc;
    return out_side;
}

static void plan(eb_inception *m) {
    int s = EB_INCEPTION_SIDE;
    add_conv(m, "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0, s), s = conv_out_side(&m->convs[0], s);    /* 149 */
    add_conv(m, "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0, s), s = conv_out_side(&m->convs[1], s);   /* 147 */
    add_conv(m, "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1, s);                                        /* 147 */
    s = (s - 3) / 2 + 1;                                                                           /* 73  */
    add_conv(m, "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0, s);
    add_conv(m, "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0, s), s = conv_out_side(&m->convs[4], s);  /* 71 */
    s = (s - 3) / 2 + 1;                                                                           /* 35 */
    s = add_block(m, BLOCK_A, "Mixed_5b", 192, 32, s);
    s = add_block(m, BLOCK_A, "Mixed_5c", 256, 64, s);
    s = add_block(m, BLOCK_A, "Mixed_5d", 288, 64, s);
    s = add_block(m, BLOCK_B, "Mixed_6a", 288, 0, s);                                              /* 17 */
    s = add_block(m, BLOCK_C, "Mixed_6b", 768, 128, s);
    s = add_block(m, BLOCK_C, "Mixed_6c", 768, 160, s);
    s = add_block(m, BLOCK_C, "Mixed_6d", 768, 160, s);
    s = add_block(m, BLOCK_C, "Mixed_6e", 768, 192, s);
    s = add_block(m, BLOCK_D, "Mixed_7a", 768, 0, s);                                              /* 8 */
    s = add_block(m, BLOCK_E_AVG, "Mixed_7b", 1280, 0, s);
    add_block(m, BLOCK_E_MAX, "Mixed_7c", 2048, 0, s);
    if (m->with_fc) {
        add_tensor(m, "fc.weight", "", 2, (int64_t[]){EB_INCEPTION_CLASSES, EB_INCEPTION_POOL});
        m->fc = m->slab_floats;
        m->slab_floats += (size_t)EB_INCEPTION_CLASSES * EB_INCEPTION_POOL;
    }
}

eb_status eb_inception_create_on(eb_inception **out, int with_fc, const eb_device *dev) {
    *out = NULL;
    const eb_backend *be, *cond_be;
    eb_status st = eb_backend_select(dev, &be, &cond_be);
    if (st) return st;
    const char *missing = eb_backend_missing_op(be, "conv2d avg_pool2d max_pool2d resize_bilinear_tf1 relu");
    if (missing)
        return eb_fail(EB_ERUNTIME, "device %s: the backend has no %s, which the Inception network needs", be->name,
                       missing);
    eb_inception *m = calloc(1, sizeof *m);
    if (!m) return eb_fail(EB_ERUNTIME, "out of memory for the Inception network");
    m->be = be;
    m->with_fc = with_fc != 0;
    plan(m);
    if (!(m->slab = be->alloc(m->slab_floats * sizeof(float)))) {
        free(m);
        return eb_fail(EB_ERUNTIME, "out of memory for the Inception weights on %s", be->name);
    }
    *out = m;
    return EB_OK;
}

void eb_inception_free(eb_inception *m) {
    if (!m) return;
    m->be->free(m->in);
    for (int i = 0; i < N_BUFS; i++) m->be->free(m->buf[i]);
    m->be->free(m->slab);
    free(m);
}

int eb_inception_tensor_count(const eb_inception *m) { return m->n_tensors; }
const eb_inception_tensor *eb_inception_tensor_at(const eb_inception *m, int i) { return &m->tensors[i]; }
size_t eb_inception_tensor_floats(const eb_inception *m) { return m->table_floats; }
int eb_inception_has_logits(const eb_inception *m) { return m->with_fc; }
const char *eb_inception_device(const eb_inception *m) { return m->be->name; }

double eb_inception_macs(const eb_inception *m) {
    double macs = m->with_fc ? (double)EB_INCEPTION_CLASSES * EB_INCEPTION_POOL : 0;
    for (int i = 0; i < m->n_convs; i++) {
        const inc_conv *c = &m->convs[i];
        double o = conv_out_side(c, c->ih);
        macs += (double)c->oc * c->ic * c->kh * c->kw * o * o;
    }
    return macs;
}

eb_status eb_inception_set_tensors(eb_inception *m, const float *host) {
    for (int i = 0; i < m->n_tensors; i++) {
        const eb_inception_tensor *t = &m->tensors[i];
        for (size_t k = 0; k < t->numel; k++)
            if (!isfinite(host[t->offset + k]))
                return eb_fail(EB_EINPUT, "tensor '%s': non-finite value %g at flat index %zu", t->name,
                               (double)host[t->offset + k], k);
    }
    for (int i = 0; i < m->n_convs; i++) {
        const eb_inception_tensor *var = &m->tensors[m->convs[i].table + 4];
        for (size_t k = 0; k < var->numel; k++)
            if (!(host[var->offset + k] + EB_INCEPTION_BN_EPS > 0))
                return eb_fail(EB_EINPUT, "tensor '%s': channel %zu: running_var %g + eps %g is not positive",
                               var->name, k, (double)host[var->offset + k], EB_INCEPTION_BN_EPS);
    }
    float *slab = malloc(m->slab_floats * sizeof *slab);
    if (!slab) return eb_fail(EB_ERUNTIME, "out of memory folding the Inception weights");
    for (int i = 0; i < m->n_convs; i++) {
        const inc_conv *c = &m->convs[i];
        const float *w = host + m->tensors[c->table].offset, *gamma = host + m->tensors[c->table + 1].offset;
        const float *beta = host + m->tensors[c->table + 2].offset, *mean = host + m->tensors[c->table + 3].offset;
        const float *var = host + m->tensors[c->table + 4].offset;
        const size_t per = (size_t)c->ic * c->kh * c->kw;
        for (int o = 0; o < c->oc; o++) {
            double scale = gamma[o] / sqrt((double)var[o] + EB_INCEPTION_BN_EPS);
            for (size_t k = 0; k < per; k++) slab[c->w + o * per + k] = (float)(w[o * per + k] * scale);
            slab[c->b + o] = (float)(beta[o] - mean[o] * scale);
        }
    }
    if (m->with_fc)
        memcpy(slab + m->fc, host + m->tensors[m->n_tensors - 1].offset,
               sizeof(float) * EB_INCEPTION_CLASSES * EB_INCEPTION_POOL);
    m->be->upload(m->slab, slab, m->slab_floats * sizeof(float));
    free(slab);
    return EB_OK;
}

void eb_inception_images_from_u8(float *dst, const uint8_t *src, int N, int H, int W) {
    const size_t hw = (size_t)H * W;
    for (size_t i = 0; i < (size_t)N; i++)
        for (size_t p = 0; p < hw; p++)
            for (size_t c = 0; c < 3; c++) dst[(i * 3 + c) * hw + p] = (float)src[(i * hw + p) * 3 + c];
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */

/* conv c of x (B, c->ic, H, H) into channels [c0, c0 + c->oc) of out, whose images have ctot
 * channels; ctot 0 means out is a whole (B, c->oc, ·) tensor, which gets its ReLU here (a block
 * output gets its ReLU once, after every branch wrote). Returns the output side. */
static int run_conv(const eb_inception *m, const inc_conv *c, float *out, int ctot, int c0, const float *x, int B,
                    int H) {
    eb_conv_shape s = {.B = B, .IC = c->ic, .H = H, .W = H, .OC = c->oc, .kh = c->kh, .kw = c->kw, .sh = c->stride,
                       .sw = c->stride, .ph = c->ph, .pw = c->pw, .out_ctot = ctot};
    const int oh = eb_conv_out_h(&s), ow = eb_conv_out_w(&s);
    m->be->conv2d(out + (size_t)c0 * oh * ow, x, m->slab + c->w, m->slab + c->b, &s);
    if (!ctot) m->be->relu(out, out, (size_t)B * c->oc * oh * ow);
    return oh;
}

/* The 3×3 stride-2 max pool of x (B, C, H, H) into channels [c0, c0 + C) of out (ctot channels),
 * image by image (the pool writes whole tensors). */
static void max_pool_into(const eb_inception *m, float *out, int ctot, int c0, const float *x, int B, int C, int H) {
    const int oh = (H - 3) / 2 + 1;
    for (int b = 0; b < B; b++)
        m->be->max_pool2d(out + ((size_t)b * ctot + c0) * oh * oh, x + (size_t)b * C * H * H, 1, C, H, H, 3, 2, 0);
}

/* y (B, blk->cout, ·) = block(x (B, blk->cin, H, H)) through the temporaries t[0..2]; returns the
 * output side. */
static int run_block(const eb_inception *m, const inc_block *blk, float *y, const float *x, float **t, int B, int H) {
    const inc_conv *c = &m->convs[blk->first];
    const int ct = blk->cout;
    int oh = H, off = 0;
    switch (blk->kind) {
    case BLOCK_A:
        run_conv(m, &c[0], y, ct, off, x, B, H), off += c[0].oc;
        run_conv(m, &c[1], t[0], 0, 0, x, B, H);
        run_conv(m, &c[2], y, ct, off, t[0], B, H), off += c[2].oc;
        run_conv(m, &c[3], t[0], 0, 0, x, B, H);
        run_conv(m, &c[4], t[1], 0, 0, t[0], B, H);
        run_conv(m, &c[5], y, ct, off, t[1], B, H), off += c[5].oc;
        m->be->avg_pool2d(t[0], x, B, blk->cin, H, H, 3, 1, 1);
        run_conv(m, &c[6], y, ct, off, t[0], B, H);
        break;
    case BLOCK_B:
        oh = run_conv(m, &c[0], y, ct, off, x, B, H), off += c[0].oc;
        run_conv(m, &c[1], t[0], 0, 0, x, B, H);
        run_conv(m, &c[2], t[1], 0, 0, t[0], B, H);
        run_conv(m, &c[3], y, ct, off, t[1], B, H), off += c[3].oc;
        max_pool_into(m, y, ct, off, x, B, blk->cin, H);
        break;
    case BLOCK_C:
        run_conv(m, &c[0], y, ct, off, x, B, H), off += c[0].oc;
        run_conv(m, &c[1], t[0], 0, 0, x, B, H);
        run_conv(m, &c[2], t[1], 0, 0, t[0], B, H);
        run_conv(m, &c[3], y, ct, off, t[1], B, H), off += c[3].oc;
        run_conv(m, &c[4], t[0], 0, 0, x, B, H);
        for (int i = 5; i < 8; i++) run_conv(m, &c[i], t[i % 2], 0, 0, t[(i + 1) % 2], B, H);
        run_conv(m, &c[8], y, ct, off, t[1], B, H), off += c[8].oc;
        m->be->avg_pool2d(t[0], x, B, blk->cin, H, H, 3, 1, 1);
        run_conv(m, &c[9], y, ct, off, t[0], B, H);
        break;
    case BLOCK_D:
        run_conv(m, &c[0], t[0], 0, 0, x, B, H);
        oh = run_conv(m, &c[1], y, ct, off, t[0], B, H), off += c[1].oc;
        run_conv(m, &c[2], t[0], 0, 0, x, B, H);
        run_conv(m, &c[3], t[1], 0, 0, t[0], B, H);
        run_conv(m, &c[4], t[0], 0, 0, t[1], B, H);
        run_conv(m, &c[5], y, ct, off, t[0], B, H), off += c[5].oc;
        max_pool_into(m, y, ct, off, x, B, blk->cin, H);
        break;
    case BLOCK_E_AVG:
    case BLOCK_E_MAX:
        run_conv(m, &c[0], y, ct, off, x, B, H), off += c[0].oc;
        run_conv(m, &c[1], t[0], 0, 0, x, B, H);
        run_conv(m, &c[2], y, ct, off, t[0], B, H), off += c[2].oc;
        run_conv(m, &c[3], y, ct, off, t[0], B, H), off += c[3].oc;
        run_conv(m, &c[4], t[1], 0, 0, x, B, H);
        run_conv(m, &c[5], t[2], 0, 0, t[1], B, H);
        run_conv(m, &c[6], y, ct, off, t[2], B, H), off += c[6].oc;
        run_conv(m, &c[7], y, ct, off, t[2], B, H), off += c[7].oc;
        if (blk->kind == BLOCK_E_AVG) m->be->avg_pool2d(t[0], x, B, blk->cin, H, H, 3, 1, 1);
        else m->be->max_pool2d(t[0], x, B, blk->cin, H, H, 3, 1, 1);
        run_conv(m, &c[8], y, ct, off, t[0], B, H);
        break;
    }
    m->be->relu(y, y, (size_t)B * ct * oh * oh);
    return oh;
}

static eb_status reserve(eb_inception *m, int B, int H, int W) {
    const size_t in = (size_t)B * 3 * H * W;
    if (in > m->in_floats) {
        m->be->free(m->in);
        m->in_floats = (m->in = m->be->alloc(in * sizeof(float))) ? in : 0;
    }
    for (int i = 0; i < N_BUFS && m->in; i++)
        if (!m->buf[i] && !(m->buf[i] = m->be->alloc((size_t)EB_INCEPTION_CHUNK * MAX_ACT * sizeof(float)))) break;
    for (int i = 0; i < N_BUFS; i++)
        if (!m->in || !m->buf[i])
            return eb_fail(EB_ERUNTIME, "out of memory for the Inception activations (%d images of %dx%d on %s)", B, H,
                           W, m->be->name);
    return EB_OK;
}

/* One chunk of B ≤ EB_INCEPTION_CHUNK normalized images x (B, 3, H, W), host: pool (B, 2048),
 * spatial (B, 2023), logits (B, 1008) on the host (each may be NULL). */
static void forward_chunk(eb_inception *m, float *pool, float *spatial, float *logits, const float *x, int B, int H,
                          int W, float *spatial_nchw) {
    const eb_backend *be = m->be;
    const inc_conv *c = m->convs;
    float *a = m->buf[0], *b = m->buf[1];
    be->upload(m->in, x, sizeof(float) * (size_t)B * 3 * H * W);
    be->resize_bilinear_tf1(a, m->in, B, 3, H, W, EB_INCEPTION_SIDE, EB_INCEPTION_SIDE);
    int s = run_conv(m, &c[0], b, 0, 0, a, B, EB_INCEPTION_SIDE);
    s = run_conv(m, &c[1], a, 0, 0, b, B, s);
    s = run_conv(m, &c[2], b, 0, 0, a, B, s);
    be->max_pool2d(a, b, B, c[2].oc, s, s, 3, 2, 0), s = (s - 3) / 2 + 1;
    s = run_conv(m, &c[3], b, 0, 0, a, B, s);
    s = run_conv(m, &c[4], a, 0, 0, b, B, s);
    be->max_pool2d(b, a, B, c[4].oc, s, s, 3, 2, 0), s = (s - 3) / 2 + 1;
    float *x_blk = b, *y_blk = a;
    for (int i = 0; i < m->n_blocks; i++) {
        s = run_block(m, &m->blocks[i], y_blk, x_blk, m->buf + 2, B, s);
        if (i == SPATIAL_BLOCK && spatial) {
            /* channels 0–6 of the block output (its branch1x1 comes first), then NCHW → NHWC */
            const size_t plane = (size_t)SPATIAL_SIDE * SPATIAL_SIDE, per = SPATIAL_CHANNELS * plane;
            for (int k = 0; k < B; k++)
                be->download(spatial_nchw + k * per, y_blk + (size_t)k * m->blocks[i].cout * plane, per * sizeof(float));
            for (int k = 0; k < B; k++)
                for (size_t p = 0; p < plane; p++)
                    for (size_t ch = 0; ch < SPATIAL_CHANNELS; ch++)
                        spatial[(size_t)k * EB_INCEPTION_SPATIAL + p * SPATIAL_CHANNELS + ch] =
                            spatial_nchw[k * per + ch * plane + p];
        }
        float *swap = x_blk;
        x_blk = y_blk, y_blk = swap;
    }
    /* global mean of Mixed_7c (B, 2048, 8, 8) → (B, 2048); the fc layer without a bias */
    float *p = m->buf[2], *l = m->buf[3];
    be->avg_pool2d(p, x_blk, B, EB_INCEPTION_POOL, s, s, s, s, 0);
    if (pool) be->download(pool, p, sizeof(float) * (size_t)B * EB_INCEPTION_POOL);
    if (logits) {
        be->linear_rows(l, p, m->slab + m->fc, NULL, B, EB_INCEPTION_POOL, EB_INCEPTION_CLASSES);
        be->download(logits, l, sizeof(float) * (size_t)B * EB_INCEPTION_CLASSES);
    }
}

/* EB_ERUNTIME naming the first non-finite value of out (N, D). */
static eb_status check_output(const float *out, int N, int D, const char *what) {
    for (size_t i = 0; out && i < (size_t)N * D; i++)
        if (!isfinite(out[i]))
            return eb_fail(EB_ERUNTIME, "Inception: %s of image %zu, element %zu is %g", what, i / D, i % D,
                           (double)out[i]);
    return EB_OK;
}

eb_status eb_inception_forward(eb_inception *m, float *pool, float *spatial, float *logits, const float *images, int N,
                               int H, int W) {
    if (N < 1 || H < 1 || W < 1 || H > EB_INCEPTION_MAX_SIDE || W > EB_INCEPTION_MAX_SIDE)
        return eb_fail(EB_EINPUT, "Inception: %d images of %dx%d (need N >= 1 and sides in [1, %d])", N, H, W,
                       EB_INCEPTION_MAX_SIDE);
    if (logits && !m->with_fc)
        return eb_fail(EB_EINPUT, "Inception: logits asked of weights without fc.weight");
    const size_t hw = (size_t)H * W, per = 3 * hw;
    for (size_t i = 0; i < (size_t)N * per; i++)
        if (!isfinite(images[i]))
            return eb_fail(EB_EINPUT, "Inception: image %zu channel %zu pixel (%zu, %zu) is %g", i / per, i / hw % 3,
                           i % hw / W, i % W, (double)images[i]);
    const int chunk = N < EB_INCEPTION_CHUNK ? N : EB_INCEPTION_CHUNK;
    eb_status st = reserve(m, chunk, H, W);
    if (st) return st;
    float *x = malloc(sizeof(float) * ((size_t)chunk * per + (size_t)chunk * SPATIAL_CHANNELS * SPATIAL_SIDE * SPATIAL_SIDE));
    if (!x) return eb_fail(EB_ERUNTIME, "out of memory for %d Inception input images of %dx%d", chunk, H, W);
    for (int first = 0; first < N; first += chunk) {
        const int B = N - first < chunk ? N - first : chunk;
        /* the graph's (x − 128)/128, here before the resize: its weights sum to 1, so they commute */
        for (size_t i = 0; i < (size_t)B * per; i++) x[i] = (images[(size_t)first * per + i] - 128.0f) * (1.0f / 128);
        forward_chunk(m, pool ? pool + (size_t)first * EB_INCEPTION_POOL : NULL,
                      spatial ? spatial + (size_t)first * EB_INCEPTION_SPATIAL : NULL,
                      logits ? logits + (size_t)first * EB_INCEPTION_CLASSES : NULL, x, B, H, W,
                      x + (size_t)chunk * per);
    }
    free(x);
    if ((st = check_output(pool, N, EB_INCEPTION_POOL, "pool feature"))) return st;
    if ((st = check_output(spatial, N, EB_INCEPTION_SPATIAL, "spatial feature"))) return st;
    return check_output(logits, N, EB_INCEPTION_CLASSES, "logit");
}
