/* backend_cuda.cu — the CUDA backend: device set-up, registered device memory
 * (with the bf16 weight copies and scratch buffers), host transfers, failure
 * recording and the three backend tables, one per precision. */
#include "runtime/cuda/common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Failures                                                                  */

static char first_failure[256];

void cuda_note(cudaError_t e, const char *what) {
    if (e == cudaSuccess || first_failure[0]) return;
    snprintf(first_failure, sizeof first_failure, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

bool cuda_failed(void) { return first_failure[0] != 0; }

void cuda_note_blas(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS || first_failure[0]) return;
    snprintf(first_failure, sizeof first_failure, "cuBLASLt: %s: status %d", what, (int)s);
}

__global__ void fill_nan_kernel(float *out, size_t n) {
    GRID_STRIDE(i, n) out[i] = __int_as_float(0x7fffffff);
}

void cuda_poison(float *out, size_t n) {
    fill_nan_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(out, n);
    cuda_launched("fill NaN");
}

/* ------------------------------------------------------------------------ */
/* Registered device memory                                                  */

typedef struct {
    char *ptr;
    size_t bytes;
    __nv_bfloat16 *bf16; /* the bf16 copy (bytes / 2), or NULL */
} allocation;

static allocation *allocs;
static int nallocs, cap_allocs;
static size_t bytes_now, bytes_peak;
static void *scratch[CUDA_SCRATCH_SLOTS];
static size_t scratch_bytes[CUDA_SCRATCH_SLOTS];

static void count_bytes(ptrdiff_t delta) {
    bytes_now += delta;
    if (bytes_now > bytes_peak) bytes_peak = bytes_now;
}

void eb_cuda_memory(size_t *now, size_t *peak) {
    *now = bytes_now;
    *peak = bytes_peak;
}

void eb_cuda_memory_reset_peak(void) { bytes_peak = bytes_now; }

/* Device memory of `bytes`, counted; NULL (error cleared: it is not sticky) when it does not fit. */
static void *device_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    count_bytes((ptrdiff_t)bytes);
    return p;
}

static void device_free(void *p, size_t bytes) {
    if (!p) return;
    cuda_note(cudaFree(p), "cudaFree");
    count_bytes(-(ptrdiff_t)bytes);
}

/* The registered allocation holding address p, or NULL. */
static allocation *find_allocation(const void *p) {
    for (int i = 0; i < nallocs; i++)
        if ((const char *)p >= allocs[i].ptr && (const char *)p < allocs[i].ptr + allocs[i].bytes) return &allocs[i];
    return NULL;
}

static void drop_bf16_copy(allocation *a) {
    device_free(a->bf16, a->bytes / 2);
    a->bf16 = NULL;
}

void *cuda_alloc(size_t bytes) {
    bytes = bytes ? bytes : 1; /* a distinct, findable address even for nothing */
    if (nallocs == cap_allocs) {
        int cap = cap_allocs ? 2 * cap_allocs : 64;
        allocation *grown = (allocation *)realloc(allocs, cap * sizeof *grown);
        if (!grown) return NULL;
        allocs = grown, cap_allocs = cap;
    }
    void *p = device_alloc(bytes);
    if (!p) return NULL;
    if (cudaMemset(p, 0, bytes) != cudaSuccess) {
        cuda_note(cudaGetLastError(), "cudaMemset");
        device_free(p, bytes);
        return NULL;
    }
    allocs[nallocs++] = (allocation){(char *)p, bytes, NULL};
    return p;
}

void cuda_free(void *ptr) {
    if (!ptr) return;
    allocation *a = find_allocation(ptr);
    if (!a || a->ptr != (char *)ptr) {
        cuda_note(cudaErrorInvalidDevicePointer, "free of memory the backend did not allocate");
        return;
    }
    drop_bf16_copy(a);
    device_free(a->ptr, a->bytes);
    *a = allocs[--nallocs];
}

const __nv_bfloat16 *cuda_bf16_copy_of(const float *w, size_t n) {
    allocation *a = find_allocation(w);
    if (!a || (const char *)(w + n) > a->ptr + a->bytes) {
        cuda_note(cudaErrorInvalidDevicePointer, "bf16 GEMM weights outside the backend's memory");
        return NULL;
    }
    if (!a->bf16) {
        if (!(a->bf16 = (__nv_bfloat16 *)device_alloc(a->bytes / 2))) {
            cuda_note(cudaErrorMemoryAllocation, "bf16 copy of the weights");
            return NULL;
        }
        cuda_to_bf16(a->bf16, (const float *)a->ptr, a->bytes / sizeof(float));
    }
    return a->bf16 + (w - (const float *)a->ptr);
}

void *cuda_scratch(int slot, size_t bytes) {
    if (scratch_bytes[slot] >= bytes) return scratch[slot];
    device_free(scratch[slot], scratch_bytes[slot]);
    scratch_bytes[slot] = 0;
    if (!(scratch[slot] = device_alloc(bytes))) {
        cuda_note(cudaErrorMemoryAllocation, "scratch buffer");
        return NULL;
    }
    scratch_bytes[slot] = bytes;
    return scratch[slot];
}

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

void cuda_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    to_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dst, src, n);
    cuda_launched("bf16 conversion");
}

/* ------------------------------------------------------------------------ */
/* Host transfers                                                            */

static void cuda_upload(void *dst, const void *src, size_t bytes) {
    allocation *a = find_allocation(dst);
    if (a) drop_bf16_copy(a); /* the weights it was made from change */
    cuda_note(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
}

static void cuda_download(void *dst, const void *src, size_t bytes) {
    cuda_note(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download");
    if (cuda_failed()) memset(dst, 0xff, bytes); /* NaN in every float */
}

/* ------------------------------------------------------------------------ */
/* Device set-up                                                             */

static cudaDeviceProp props;
static cublasLtHandle_t lt;
static void *workspace;
static size_t workspace_bytes;
static char device_name[320];
static int setup_done;
static eb_status setup_status;
static char setup_message[512];

const cudaDeviceProp *cuda_props(void) { return &props; }
cublasLtHandle_t cuda_lt(void) { return lt; }
void *cuda_workspace(size_t *bytes) {
    *bytes = workspace_bytes;
    return workspace;
}
const char *eb_cuda_device_name(void) { return device_name; }

/* cuBLASLt's recommended workspace for Hopper. */
#define WORKSPACE_BYTES (32u << 20)

__global__ void probe_kernel(void) {}

static eb_status setup(void) {
    int count = 0, dev = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return eb_fail(EB_ERUNTIME, "no CUDA device or driver: %s",
                       e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists no device");
    if ((e = cudaGetDevice(&dev)) || (e = cudaGetDeviceProperties(&props, dev)))
        return eb_fail(EB_ERUNTIME, "no CUDA device or driver: %s", cudaGetErrorString(e));
    snprintf(device_name, sizeof device_name, "%s (sm_%d%d)", props.name, props.major, props.minor);
    cudaFuncAttributes fa;
    if ((e = cudaFuncGetAttributes(&fa, probe_kernel)))
        return eb_fail(EB_ERUNTIME, "CUDA device %s: this build has no code for it (%s); rebuild with CUDA_ARCH=%d%d",
                       device_name, cudaGetErrorString(e), props.major, props.minor);
    cublasStatus_t s = cublasLtCreate(&lt);
    if (s != CUBLAS_STATUS_SUCCESS) return eb_fail(EB_ERUNTIME, "CUDA device %s: cuBLASLt: status %d", device_name, (int)s);
    if (!(workspace = device_alloc(WORKSPACE_BYTES)))
        return eb_fail(EB_ERUNTIME, "CUDA device %s: out of memory for the GEMM workspace", device_name);
    workspace_bytes = WORKSPACE_BYTES;
    return EB_OK;
}

/* ------------------------------------------------------------------------ */
/* The tables                                                                */

template <eb_precision P>
static void linear_at(float *out, const float *in, const float *w, const float *b, int BT, int IC, int OC) {
    cuda_linear(P, out, in, w, b, BT, IC, OC);
}

template <eb_precision P> static void attention_at(float *out, const float *qkv, int B, int T, int NH, int hd) {
    cuda_attention(P, out, qkv, B, T, NH, hd);
}

template <eb_precision P>
static void attention_colsum_at(float *out, float *colsum, const float *qkv, int B, int T, int NH, int hd) {
    cuda_attention_colsum(P, out, colsum, qkv, B, T, NH, hd);
}

template <eb_precision P>
static void conv2d_at(float *out, const float *x, const float *w, const float *b, const eb_conv_shape *s) {
    cuda_conv2d(P, out, x, w, b, s);
}

/* Every op, the optional cache and recorder block (ToCa's ops included) and image block (backend.h). */
#define CUDA_TABLE(P, NAME)                                                                                    \
    {                                                                                                          \
        .name = NAME, .alloc = cuda_alloc, .free = cuda_free, .upload = cuda_upload,                           \
        .download = cuda_download, .linear = linear_at<P>, .linear_rows = linear_at<P>,                        \
        .patch_embed = cuda_patch_embed,                                                                       \
        .timestep_freq = cuda_timestep_freq, .silu = cuda_silu, .label_add = cuda_label_add,                   \
        .ln_modulate = cuda_ln_modulate, .attention = attention_at<P>, .gelu_tanh = cuda_gelu_tanh,            \
        .gate_residual = cuda_gate_residual, .unpatchify = cuda_unpatchify, .cfg_combine = cuda_cfg_combine,   \
        /* cache and recorder ops */                                                                           \
        .copy = cuda_copy, .add_scaled = cuda_add_scaled, .rel_l1 = cuda_rel_l1,                               \
        .taylor_update = cuda_taylor_update, .taylor_forecast = cuda_taylor_forecast,                          \
        .feature_drift = cuda_feature_drift,                                                                   \
        /* ToCa's ops */                                                                                      \
        .attention_colsum = attention_colsum_at<P>, .token_gather = cuda_token_gather,                         \
        .token_scatter = cuda_token_scatter, .toca_select = cuda_toca_select,                                  \
        /* image ops */                                                                                        \
        .conv2d = conv2d_at<P>, .group_norm = cuda_group_norm, .upsample2x = cuda_upsample2x,                  \
        .avg_pool2d = cuda_avg_pool2d, .max_pool2d = cuda_max_pool2d,                                          \
        .resize_bilinear_tf1 = cuda_resize_bilinear_tf1, .relu = cuda_relu, .transpose = cuda_transpose,       \
    }

static const eb_backend tables[] = {
    CUDA_TABLE(EB_PRECISION_FP32, "cuda-fp32"),
    CUDA_TABLE(EB_PRECISION_TF32, "cuda-tf32"),
    CUDA_TABLE(EB_PRECISION_BF16, "cuda-bf16"),
};

extern "C" eb_status eb_cuda_backend(eb_precision precision, const eb_backend **out) {
    if (!setup_done) {
        setup_done = 1;
        if ((setup_status = setup())) snprintf(setup_message, sizeof setup_message, "%s", eb_last_error());
    }
    if (setup_status) return eb_fail(setup_status, "%s", setup_message);
    if ((int)precision < 0 || (int)precision >= (int)(sizeof tables / sizeof tables[0]))
        return eb_fail(EB_EINPUT, "CUDA backend: precision %d unknown", (int)precision);
    *out = &tables[precision];
    return EB_OK;
}
