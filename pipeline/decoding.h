/* pipeline/decoding.h — `decode` as a library call (docs/vae.md): the
 * latents `ebcache sample` wrote (samples (N, C, H, W), y (N)) through the
 * SD-VAE decoder (runtime/vae.h) into an HDF5 file of the raw decoder output
 * or an .npz of uint8 images as DiT's sample_ddp.py writes them, on one
 * process or shared by the ranks of a communicator.
 *
 * Library code: status codes and eb_fail messages, nothing printed (the
 * progress line on a terminal aside, when `progress` is set). */
#ifndef EB_PIPELINE_DECODING_H
#define EB_PIPELINE_DECODING_H

#include "runtime/comm.h"
#include "runtime/ebcache.h"

#define EB_DECODE_SCALE_FACTOR 0.18215 /* DiT's and Stable Diffusion's latent scale */

typedef struct {
    const char *vae;      /* AutoencoderKL weights: a diffusers folder, a pipeline folder holding vae/, or a
                             .safetensors file (eb_vae_load_on) (required)                                  */
    const char *samples;  /* S.h5: dataset samples (N, latent_channels, H, W), optional y (N) (required)   */
    const char *output;   /* OUT.h5: images (N, 3, 8H, 8W) float32, the raw decoder output, y and the
                             attributes; OUT.npz: arr_0 (N, 8H, 8W, 3) uint8 RGB, streamed (required)       */
    double scale_factor;  /* the decoder sees samples / scale_factor (EB_DECODE_SCALE_FACTOR)               */
    int batch;            /* latents per decoder batch (1); a fixed batch gives the same bits               */
    int threads;          /* 0: all cores                                                                   */
    eb_device device;     /* {NULL = cpu, fp32}                                                             */
    const eb_comm *comm;  /* NULL: one process; else this rank decodes its share of whole batches, reading
                             only those rows of `samples`, and rank 0 merges the parts (docs/distributed.md) */
    int progress;         /* 1: a progress line (images, seconds, ETA) on stderr when it is a terminal (0)  */
} eb_decode_params;

/* The defaults above, every pointer NULL. */
void eb_decode_params_defaults(eb_decode_params *p);

typedef struct {
    int N, height, width; /* images decoded (the job's) and their size in pixels                         */
    double wall;          /* seconds the decoding took (the slowest rank's)                             */
    double merge;         /* seconds rank 0 spent merging the ranks' parts (0 with one)                 */
    double flop;          /* 2 × the decoder's multiply-accumulates for the N images                    */
    char device[32];      /* what the decoder ran on (eb_vae_device: "cpu", "cuda-fp32", …)             */
} eb_decode_result;

/* Checks p (EB_EINPUT naming the field in backquotes: a missing path,
 * `scale_factor` not positive, `batch` < 1), loads the decoder, reads this
 * rank's rows of the latents (all of them with one process: an HDF5
 * hyperslab read, so a rank never reads another's rows) and decodes them in
 * batches into p->output, written atomically (temporary file renamed, or
 * with several ranks part files merged in rank order, runtime/h5parts.h):
 * the output is byte for byte the one of one process. The HDF5 output's
 * root attributes: vae, vae_layout, samples, scale_factor, device,
 * ebcache_version, wall_seconds, ranks. EB_EINPUT for bad input (naming the
 * file and dataset: no latents, channels other than the decoder's, a
 * non-finite latent, .npz output of a decoder without 3 channels),
 * EB_ERUNTIME otherwise; with several ranks every rank calls this with the
 * same p and gets the same status ("rank R: …"). Nothing is left at
 * p->output on failure. r (may be NULL) is filled on success. */
eb_status eb_decode_to_file(const eb_decode_params *p, eb_decode_result *r);

#endif
