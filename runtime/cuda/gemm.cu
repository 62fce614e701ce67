/* gemm.cu — linear layers on cuBLASLt: out (BT, OC) = in (BT, IC) · w (OC, IC)ᵀ + b,
 * and the strided batches of GEMMs the attention runs, through one plan cache.
 *
 * Row-major out is column-major outᵀ (OC × BT) = w · inᵀ, so cuBLASLt sees
 * A = w stored IC × OC and transposed, B = in stored IC × BT, D = out OC × BT.
 * fp32 runs plain float32 FMAs (CUBLAS_COMPUTE_32F: exact to rounding); tf32
 * runs tensor cores on the float operands (COMPUTE_32F_FAST_TF32); bf16 runs
 * them on bf16 copies — the weights' made once per parameter slab, the input's
 * per call — accumulating in float32. The output is float32 at every
 * precision. The bias is the matmul's epilogue where cuBLASLt takes it (a
 * 16-byte aligned bias), else a pass of its own.
 */
#include "runtime/cuda/common.cuh"

#include <stdlib.h>

/* What a call brings for a bias: none, one cuBLASLt's epilogue may read, or a misaligned one. */
typedef enum { BIAS_NONE, BIAS_ALIGNED, BIAS_UNALIGNED } bias_kind;

/* One GEMM shape's cuBLASLt descriptors and the algorithm its heuristic chose,
 * for operands at least as aligned as the key says. */
typedef struct {
    cuda_gemm_shape shape;
    int precision, bias, align_a, align_b, align_d; /* key, with the shape */
    int ok, epilogue; /* epilogue: the matmul adds the bias; else a pass of its own does */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

static gemm_plan *plans;
static int nplans, cap_plans;

/* The largest power of two ≤ 256 dividing the address (the alignments cuBLASLt filters on)
 * and, in a batch, every matrix's address: the stride's bytes too. */
static int alignment(const void *p, long long stride_bytes, int batch) {
    int a = 256;
    while (a > 1 && ((uintptr_t)p % a || (batch > 1 && stride_bytes % a))) a /= 2;
    return a;
}

static int same_shape(const cuda_gemm_shape *x, const cuda_gemm_shape *y) {
    return x->m == y->m && x->n == y->n && x->k == y->k && x->trans_a == y->trans_a && x->lda == y->lda &&
           x->ldb == y->ldb && x->ldd == y->ldd && x->batch == y->batch && x->stride_a == y->stride_a &&
           x->stride_b == y->stride_b && x->stride_d == y->stride_d;
}

static void plan_destroy(gemm_plan *g) {
    if (g->op) cublasLtMatmulDescDestroy(g->op);
    if (g->a) cublasLtMatrixLayoutDestroy(g->a);
    if (g->b) cublasLtMatrixLayoutDestroy(g->b);
    if (g->d) cublasLtMatrixLayoutDestroy(g->d);
    g->op = NULL, g->a = g->b = g->d = NULL;
}

/* A column-major rows × cols layout with leading dimension ld, strided over a batch. */
static cublasStatus_t layout(cublasLtMatrixLayout_t *l, cudaDataType_t type, int rows, int cols, int ld, int batch,
                             long long stride) {
    const int32_t count = batch;
    const int64_t offset = stride;
    cublasStatus_t s = cublasLtMatrixLayoutCreate(l, type, rows, cols, ld);
    if (!s && batch > 1) s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count);
    if (!s && batch > 1)
        s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &offset, sizeof offset);
    return s;
}

/* Descriptors and a heuristic's algorithm for the plan's key and g->epilogue;
 * ok = 0 when cuBLASLt has none. */
static void plan_make(gemm_plan *g) {
    const cuda_gemm_shape *sh = &g->shape;
    const cublasComputeType_t compute =
        g->precision == EB_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const cudaDataType_t in_type = g->precision == EB_PRECISION_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasOperation_t ta = sh->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epilogue = g->epilogue ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    size_t ws_bytes;
    cuda_workspace(&ws_bytes);
    uint64_t ws = ws_bytes;
    uint32_t align_a = g->align_a, align_b = g->align_b, align_d = g->align_d;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    cublasStatus_t s = cublasLtMatmulDescCreate(&g->op, compute, CUDA_R_32F);
    if (!s) s = cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!s) s = cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!s) s = cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    if (!s)
        s = layout(&g->a, in_type, sh->trans_a ? sh->k : sh->m, sh->trans_a ? sh->m : sh->k, sh->lda, sh->batch,
                   sh->stride_a);
    if (!s) s = layout(&g->b, in_type, sh->k, sh->n, sh->ldb, sh->batch, sh->stride_b);
    if (!s) s = layout(&g->d, CUDA_R_32F, sh->m, sh->n, sh->ldd, sh->batch, sh->stride_d);
    if (!s) s = cublasLtMatmulPreferenceCreate(&pref);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, 4);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, 4);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, 4);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, 4);
    if (!s) s = cublasLtMatmulAlgoGetHeuristic(cuda_lt(), g->op, g->a, g->b, g->d, g->d, pref, 1, &result, &found);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    g->ok = !s && found > 0;
    if (g->ok) g->algo = result.algo;
    else plan_destroy(g);
}

/* The plan for a call, made on first use; NULL (noted) when cuBLASLt cannot run it. */
static const gemm_plan *plan_for(eb_precision p, const cuda_gemm_shape *sh, const void *a, const void *b,
                                 const float *out, const float *bias) {
    const int es = p == EB_PRECISION_BF16 ? 2 : 4;
    gemm_plan key = {};
    key.shape = *sh, key.precision = (int)p;
    key.bias = !bias ? BIAS_NONE : alignment(bias, 0, 1) >= 16 ? BIAS_ALIGNED : BIAS_UNALIGNED;
    key.align_a = alignment(a, sh->stride_a * es, sh->batch), key.align_b = alignment(b, sh->stride_b * es, sh->batch);
    key.align_d = alignment(out, sh->stride_d * 4, sh->batch);
    for (int i = 0; i < nplans; i++) {
        const gemm_plan *g = &plans[i];
        if (same_shape(&g->shape, sh) && g->precision == key.precision && g->bias == key.bias &&
            g->align_a == key.align_a && g->align_b == key.align_b && g->align_d == key.align_d)
            return g->ok ? g : NULL;
    }
    if (nplans == cap_plans) {
        int cap = cap_plans ? 2 * cap_plans : 32;
        gemm_plan *grown = (gemm_plan *)realloc(plans, cap * sizeof *grown);
        if (!grown) {
            cuda_note(cudaErrorMemoryAllocation, "GEMM plans");
            return NULL;
        }
        plans = grown, cap_plans = cap;
    }
    key.epilogue = key.bias == BIAS_ALIGNED;
    plan_make(&key);
    if (!key.ok && key.epilogue) { /* no algorithm with the bias epilogue: a bias pass instead */
        key.epilogue = 0;
        plan_make(&key);
    }
    plans[nplans++] = key;
    if (!key.ok) cuda_note_blas(CUBLAS_STATUS_NOT_SUPPORTED, "no GEMM algorithm for this shape and alignment");
    return key.ok ? &plans[nplans - 1] : NULL;
}

/* The linear layer as a GEMM: outᵀ (OC × BT) = w (IC × OC)ᵀ · inᵀ (IC × BT), column-major. */
static cuda_gemm_shape linear_shape(int BT, int IC, int OC) {
    cuda_gemm_shape sh = {};
    sh.m = OC, sh.n = BT, sh.k = IC, sh.trans_a = 1, sh.lda = IC, sh.ldb = IC, sh.ldd = OC, sh.batch = 1;
    return sh;
}

__global__ void add_bias_kernel(float *out, const float *b, int OC, size_t n) {
    GRID_STRIDE(i, n) out[i] += b[i % OC];
}

/* out = a-side · b-side (+ bias) with the plan's algorithm. */
static void gemm_run(const gemm_plan *g, const void *a, const void *b, float *out, const float *bias) {
    const float one = 1.0f, zero = 0.0f;
    size_t ws_bytes;
    void *ws = cuda_workspace(&ws_bytes);
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    if (g->epilogue) s = cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (!s) s = cublasLtMatmul(cuda_lt(), g->op, &one, a, g->a, b, g->b, &zero, out, g->d, out, g->d, &g->algo, ws,
                               ws_bytes, 0);
    cuda_note_blas(s, "matmul");
    if (bias && !g->epilogue) {
        size_t n = (size_t)g->shape.n * g->shape.m;
        add_bias_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, bias, g->shape.m, n);
        cuda_launched("bias");
    }
}

void cuda_linear(eb_precision p, float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC) {
    const void *a = w, *x = in;
    if (p == EB_PRECISION_BF16) {
        __nv_bfloat16 *in16 = (__nv_bfloat16 *)cuda_scratch(CUDA_SCRATCH_BF16_IN, (size_t)BT * IC * 2);
        if (in16) cuda_to_bf16(in16, in, (size_t)BT * IC);
        a = cuda_bf16_copy_of(w, (size_t)OC * IC), x = in16;
    }
    const cuda_gemm_shape sh = linear_shape(BT, IC, OC);
    const gemm_plan *g = a && x ? plan_for(p, &sh, a, x, out, b) : NULL;
    if (g) gemm_run(g, a, x, out, b);
    else cuda_poison(out, (size_t)BT * OC);
}

void cuda_gemm(eb_precision p, const cuda_gemm_shape *sh, const void *a, const void *b, float *d) {
    const gemm_plan *g = a && b ? plan_for(p, sh, a, b, d, NULL) : NULL;
    if (g) gemm_run(g, a, b, d, NULL);
    else cuda_poison(d, (size_t)(sh->batch - 1) * sh->stride_d + (size_t)sh->ldd * sh->n);
}

extern "C" double eb_cuda_gemm_seconds(eb_precision p, int BT, int IC, int OC, int iters) {
    const size_t in_size = p == EB_PRECISION_BF16 ? 2 : 4;
    void *a = cuda_alloc((size_t)OC * IC * in_size), *x = cuda_alloc((size_t)BT * IC * in_size);
    float *out = (float *)cuda_alloc((size_t)BT * OC * 4), *bias = (float *)cuda_alloc((size_t)OC * 4);
    const cuda_gemm_shape sh = linear_shape(BT, IC, OC);
    const gemm_plan *g = a && x && out && bias ? plan_for(p, &sh, a, x, out, bias) : NULL;
    double seconds = -1;
    cudaEvent_t start, stop;
    if (g && !cudaEventCreate(&start) && !cudaEventCreate(&stop)) {
        /* 0x3c bytes: small finite operands (≈ 0.0115 in fp32 and bf16), so the tensor cores work on real data */
        cudaMemset(a, 0x3c, (size_t)OC * IC * in_size);
        cudaMemset(x, 0x3c, (size_t)BT * IC * in_size);
        gemm_run(g, a, x, out, bias);
        cudaEventRecord(start, 0);
        for (int k = 0; k < iters; k++) gemm_run(g, a, x, out, bias);
        cudaEventRecord(stop, 0);
        float ms = 0;
        if (!cudaEventSynchronize(stop) && !cudaEventElapsedTime(&ms, start, stop)) seconds = 1e-3 * ms / iters;
        cudaEventDestroy(start), cudaEventDestroy(stop);
    }
    cuda_free(a), cuda_free(x), cuda_free(out), cuda_free(bias);
    return seconds;
}
