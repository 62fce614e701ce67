/* vae.h — the SD-VAE decoder (diffusers AutoencoderKL's post_quant_conv and
 * Decoder, the stabilityai/sd-vae-ft-ema / -mse architecture), docs/vae.md.
 *
 * The model (vae.c) knows nothing about files: it owns a parameter table of
 * named tensors (diffusers' current key names) in one backend buffer, and its
 * forward runs on the backend's image operations. vae_weights.c loads a
 * diffusers folder or a .safetensors file in any of the three key layouts
 * into that table.
 */
#ifndef EB_VAE_H
#define EB_VAE_H

#include "runtime/ebcache.h"

#define EB_VAE_MAX_BLOCKS 8
#define EB_VAE_MAX_LAYERS 8
#define EB_VAE_NORM_EPS 1e-6f /* every GroupNorm of the decoder */

typedef struct {
    int latent_channels;                       /* z channels (4)                              */
    int out_channels;                          /* image channels (3)                          */
    int n_blocks;                              /* len(block_out_channels) = up blocks         */
    int block_out_channels[EB_VAE_MAX_BLOCKS]; /* encoder order (128, 256, 512, 512)          */
    int layers_per_block;                      /* the decoder runs layers_per_block + 1 resnets per up block */
    int norm_num_groups;                       /* GroupNorm groups (32)                       */
    int mid_attention;                         /* 1: the mid block's self-attention (mid_block_add_attention) */
    int post_quant_conv;                       /* 1: the 1×1 post_quant_conv before the decoder (use_post_quant_conv) */
} eb_vae_config;

/* The sd-vae-ft-ema / -mse configuration: latent 4, out 3, (128, 256, 512, 512), 2 layers, 32 groups. */
void eb_vae_config_sd(eb_vae_config *c);
/* EB_EINPUT naming the field when c cannot describe a decoder (channels not multiples of the groups, ...). */
eb_status eb_vae_config_validate(const eb_vae_config *c);
/* Side of the image per latent pixel: 2^(n_blocks − 1) (8 for sd-vae). */
int eb_vae_upscale(const eb_vae_config *c);
/* Multiply-accumulates of decoding one latent of H×W (convolutions and attention). */
double eb_vae_decode_macs(const eb_vae_config *c, int H, int W);

typedef struct eb_vae eb_vae;

/* One parameter tensor: its diffusers key, shape (conv weights (OC, IC, kh, kw), linear weights
 * (out, in), vectors (C)) and place in the model's parameter buffer. */
typedef struct {
    char name[96];
    int rank;
    int64_t shape[4];
    size_t offset, numel; /* floats */
} eb_vae_param;

/* A decoder of configuration c with every parameter zero, on dev (NULL: the CPU; docs/cuda.md for
 * the names). EB_ERUNTIME when the device cannot run or its backend lacks an image op the decoder
 * needs (named). On failure *out is NULL. */
eb_status eb_vae_create_on(eb_vae **out, const eb_vae_config *c, const eb_device *dev);
void eb_vae_free(eb_vae *v);
const eb_vae_config *eb_vae_config_of(const eb_vae *v);
/* What the decoder runs on: the backend's name ("cpu", "cuda-fp32", ...). */
const char *eb_vae_device(const eb_vae *v);

/* The parameter table, in a fixed order; i in [0, eb_vae_param_count). */
int eb_vae_param_count(const eb_vae *v);
const eb_vae_param *eb_vae_param_at(const eb_vae *v, int i);
/* Total parameter floats. */
size_t eb_vae_param_floats(const eb_vae *v);
/* Replaces every parameter by host (eb_vae_param_floats) in table offsets. */
void eb_vae_set_params(eb_vae *v, const float *host);

/* Loads a decoder (vae_weights.c, docs/vae.md): `path` is a diffusers AutoencoderKL folder
 * (config.json + diffusion_pytorch_model.safetensors), a pipeline folder holding vae/, or a
 * .safetensors file (then the sd-vae configuration). Keys in the diffusers layout, diffusers'
 * legacy attention names (query/key/value/proj_attn) or the CompVis/ldm layout (optionally under
 * first_stage_model.); encoder.* and quant_conv.* are skipped. F32/F16/BF16. A missing, mis-shaped,
 * non-float or non-finite tensor, or an unexpected decoder key, is EB_EINPUT naming the file and key.
 * On failure *out is NULL. */
eb_status eb_vae_load_on(eb_vae **out, const char *path, const eb_device *dev);
/* The key layout the last successful load found: "diffusers", "diffusers-legacy" or "ldm" (with
 * "first_stage_model." noted as "ldm (first_stage_model.)"). */
const char *eb_vae_layout(const eb_vae *v);
/* Sets the layout note (for vae_weights.c). */
void eb_vae_set_layout(eb_vae *v, const char *layout);

/* out (N, out_channels, H·s, W·s), s = eb_vae_upscale, = Decoder(post_quant_conv(z)) for z
 * (N, latent_channels, H, W): the caller has already divided the latents by the scale factor.
 * Host buffers. EB_EINPUT naming the index of a non-finite z, EB_ERUNTIME for out of memory or a
 * non-finite output (naming its index). */
eb_status eb_vae_decode(eb_vae *v, float *out, const float *z, int N, int H, int W);

#endif
