/* config.c — DiT configurations: validation, the named table, sizes and MACs. */
#include "runtime/params.h"

#include <string.h>

eb_status eb_config_validate(const eb_config *c) {
    struct { const char *name; int value, min, max; } f[] = {
        {"input_size", c->input_size, 1, 4096}, {"patch_size", c->patch_size, 1, 64},
        {"in_channels", c->in_channels, 1, 256}, {"hidden_size", c->hidden_size, 1, 16384},
        {"depth", c->depth, 1, 256}, {"num_heads", c->num_heads, 1, 1024},
        {"num_classes", c->num_classes, 0, 1000000}, {"learn_sigma", c->learn_sigma, 0, 1},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].value < f[i].min || f[i].value > f[i].max)
            return eb_fail(EB_EINPUT, "config: %s = %d outside [%d, %d]", f[i].name, f[i].value, f[i].min, f[i].max);
    if (c->input_size % c->patch_size)
        return eb_fail(EB_EINPUT, "config: input_size %d is not a multiple of patch_size %d", c->input_size,
                       c->patch_size);
    if (c->hidden_size % c->num_heads)
        return eb_fail(EB_EINPUT, "config: hidden_size %d is not a multiple of num_heads %d", c->hidden_size,
                       c->num_heads);
    if (c->hidden_size % 4)
        return eb_fail(EB_EINPUT, "config: hidden_size %d must be a multiple of 4 (2D sin-cos position embedding)",
                       c->hidden_size);
    return EB_OK;
}

static const struct { const char *size; int depth, hidden, heads; } dit_sizes[] = {
    {"XL", 28, 1152, 16}, {"L", 24, 1024, 16}, {"B", 12, 768, 12}, {"S", 12, 384, 6},
};

int eb_heads_for_hidden(int hidden_size) {
    for (size_t i = 0; i < sizeof dit_sizes / sizeof dit_sizes[0]; i++)
        if (dit_sizes[i].hidden == hidden_size) return dit_sizes[i].heads;
    return 0;
}

eb_status eb_config_named(eb_config *c, const char *name) {
    if (strncmp(name, "DiT-", 4) == 0) name += 4;
    const char *slash = strchr(name, '/');
    if (slash) {
        int patch = 0;
        const char *q = slash + 1;
        while (*q >= '0' && *q <= '9' && patch < 100) patch = patch * 10 + (*q++ - '0');
        for (size_t i = 0; i < sizeof dit_sizes / sizeof dit_sizes[0]; i++) {
            size_t n = strlen(dit_sizes[i].size);
            if ((size_t)(slash - name) == n && strncmp(name, dit_sizes[i].size, n) == 0 && *q == 0 &&
                (patch == 2 || patch == 4 || patch == 8)) {
                *c = (eb_config){.input_size = 32, .patch_size = patch, .in_channels = 4,
                                 .hidden_size = dit_sizes[i].hidden, .depth = dit_sizes[i].depth,
                                 .num_heads = dit_sizes[i].heads, .num_classes = 1000, .learn_sigma = 1};
                return EB_OK;
            }
        }
    }
    return eb_fail(EB_EINPUT, "unknown DiT configuration '%s' (expected XL/2, XL/4, XL/8, L/*, B/*, S/*)", name);
}

size_t eb_param_count(const eb_config *c) {
    size_t sizes[EB_NUM_PARAM_TENSORS], total = 0;
    eb_param_sizes(sizes, c);
    for (int i = 0; i < EB_NUM_PARAM_TENSORS; i++) total += sizes[i];
    return total;
}

double eb_forward_macs(const eb_config *c) {
    double D = c->hidden_size, T = eb_tokens(c), L = c->depth;
    double embed = T * D * eb_patch_dim(c) + EB_FREQ_DIM * D + D * D;
    double per_block = 6 * D * D                /* adaLN */
                       + T * (3 * D * D + D * D) /* qkv, proj */
                       + 2 * T * T * D           /* QKᵀ and PV */
                       + T * 2 * EB_MLP_RATIO * D * D;
    double final = 2 * D * D + T * D * c->patch_size * c->patch_size * eb_out_channels(c);
    return embed + L * per_block + final;
}
