/* backward.h — CPU backward kernels of the DiT parts (llm.c style).
 *
 * Each kernel is the adjoint of the forward kernel of the same name in
 * runtime/cpu/kernels.h and takes that kernel's shapes. Every gradient output
 * is ACCUMULATED (+=): the caller zeroes it once, and a tensor that feeds
 * several consumers (SiLU(c) feeds every adaLN) just collects their parts.
 *
 * Deterministic: no atomics; every output element is summed by one thread in
 * a fixed order, and OpenBLAS splits GEMMs over output rows/columns only, so
 * the bits do not depend on the thread count.
 */
#ifndef EB_TRAIN_BACKWARD_H
#define EB_TRAIN_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

/* out = in · wᵀ + b. dout (BT, OC); in (BT, IC); w (OC, IC).
 * dinp (BT, IC) += dout · w (skipped when dinp is NULL: first layer);
 * dweight (OC, IC) += doutᵀ · in; dbias (OC) += Σ_rows dout. */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *w,
                     int BT, int IC, int OC);

/* mod_stride 0 (one shift/scale/gate vector shared by all rows) needs B = 1 in
 * the two kernels below: rows run in parallel and would race on the shared
 * gradient; pass the batch as one row of B·T tokens instead. */

/* out = LN(x)·(1 + scale) + shift with LN's mean, rstd (B, T) saved by the forward.
 * dout, x, dx (B, T, D); scale, dshift, dscale rows of stride mod_stride (B, ·). */
void ln_modulate_backward(float *dx, float *dshift, float *dscale, const float *dout, const float *x,
                          const float *mean, const float *rstd, const float *scale, int B, int T, int D,
                          int mod_stride);

/* Softmax attention through the saved probabilities.
 * dout (B, T, NH·hd); qkv, dqkv (B, T, 3, NH, hd); probs (B, NH, T, T).
 * dprobs (B, NH, T, T) is scratch (overwritten). */
void attention_backward(float *dqkv, float *dprobs, const float *dout, const float *qkv, const float *probs, int B,
                        int T, int NH, int hd);

/* dinp (n) += dout ⊙ gelu_tanh'(inp); out (n) is the forward's gelu_tanh(inp). */
void gelu_tanh_backward(float *dinp, const float *inp, const float *out, const float *dout, size_t n);
/* dinp (n) += dout ⊙ silu'(inp). */
void silu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* x += gate ⊙ branch. dout (B, T, D) is the residual stream's gradient, which
 * passes to x unchanged (the caller keeps using the same buffer).
 * dgate (B, ·; stride mod_stride) += Σ_t dout ⊙ branch; dbranch (B, T, D) += dout ⊙ gate. */
void gate_residual_backward(float *dgate, float *dbranch, const float *dout, const float *gate, const float *branch,
                            int B, int T, int D, int mod_stride);

/* Conv2d(k=p, s=p) weights. dout (B, T, D); x (B, C, H, W); dw (D, C·p·p); db (D).
 * patches (B·T, C·p·p) is scratch: the input patches in the weight's column order. */
void patch_embed_backward(float *dw, float *db, float *patches, const float *dout, const float *x, int B, int C,
                          int H, int p, int D);

/* Label table rows (scatter-add in batch order): dtable (K+1, D)[y[b]] += dc (B, D)[b]. */
void label_add_backward(float *dtable, const float *dc, const int32_t *y, int B, int D);

/* Inverse permutation of unpatchify: dtokens (B, T, p·p·C) += dout (B, C, H, W). */
void unpatchify_backward(float *dtokens, const float *dout, int B, int C, int H, int p);

#endif
