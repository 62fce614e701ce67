/* weights.h — model weights I/O, kept apart from the model itself.
 *
 * Loading (eb_model_load, declared in ebcache.h) reads an official-key
 * .safetensors file or a diffusers folder; saving writes official keys, the
 * configuration as __metadata__ and the fixed pos_embed, so the file loads in
 * the official PyTorch code and back here without guessing.
 */
#ifndef EB_WEIGHTS_H
#define EB_WEIGHTS_H

#include "runtime/model.h"
#include "runtime/safetensors.h"

/* Writes the parameters in `slab` (eb_param_count(c) floats, eb_params_point
 * layout) to `path` atomically in `dtype` (EB_DT_F32, EB_DT_F16 or EB_DT_BF16,
 * rounded to nearest even). __metadata__ holds the eight eb_config fields
 * (input_size, ..., learn_sigma as "true"/"false") followed by the `extra`
 * pairs (e.g. recipe, step), whose keys must not repeat a config key.
 * pos_embed is the computed sin-cos table. */
eb_status eb_weights_save(const eb_config *c, const float *slab, const char *path, const eb_st_meta *extra,
                          int n_extra, eb_dtype dtype);

/* eb_weights_save of a model's own configuration, parameters and pos_embed
 * (eb_weights_save stores the sin-cos table; a model loaded from a file with
 * its own pos_embed saves that one, so a load/save round trip keeps it). */
eb_status eb_model_save(const eb_model *m, const char *path, const eb_st_meta *extra, int n_extra, eb_dtype dtype);

#endif
