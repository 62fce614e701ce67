/* fmnist.h — a strict reader of the Fashion-MNIST IDX files (gzip).
 *
 * The Debian package dataset-fashion-mnist installs
 *   <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 * Every byte is checked: magic numbers, dimensions, the exact data length the
 * header announces, labels in 0..9 and equal image and label counts.
 */
#ifndef EB_FMNIST_H
#define EB_FMNIST_H

#include <stdint.h>

#include "runtime/ebcache.h"

#define EB_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define EB_FMNIST_CLASSES 10

typedef struct {
    int n;            /* images kept                                    */
    int h, w;         /* image side after optional padding              */
    float *images;    /* (n, 1, h, w) row-major, x/127.5 − 1 in [−1, 1] */
    int32_t *labels;  /* (n) in 0..9                                    */
} eb_fmnist;

/* Loads split "train" or "t10k" from `dir` (NULL: EB_FMNIST_DEFAULT_DIR; the
 * caller may pass getenv("EBCACHE_FMNIST_DIR")). `limit` > 0 keeps the first
 * `limit` images (the whole file is still read and checked); 0 keeps all.
 * `pad_to` > 0 centres every image in a pad_to × pad_to canvas filled with −1
 * (an odd margin puts the extra row/column at the bottom/right); 0 keeps the
 * stored size. EB_EINPUT names the file and the defect; on failure `out` is
 * left empty (pointers NULL). */
eb_status eb_fmnist_load(eb_fmnist *out, const char *dir, const char *split, int limit, int pad_to);

void eb_fmnist_free(eb_fmnist *d);

#endif
