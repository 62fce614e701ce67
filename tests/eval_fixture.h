/* eval_fixture.h — what the eval tests (the CLI's and the library's) share:
 * a tiny Fashion-MNIST and a small random classifier written into a folder,
 * and sample files. */
#ifndef EB_TEST_EVAL_FIXTURE_H
#define EB_TEST_EVAL_FIXTURE_H

#include <stdint.h>

#include "train/fmnist.h"

#define EVAL_FIXTURE_N 40    /* images in each split */
#define EVAL_FIXTURE_SIDE 28

/* dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz holding the same
 * EVAL_FIXTURE_N random images and labels i % 10 as both splits, and
 * dir/clf.safetensors: a random classifier (D = 16, one block, 10 classes). */
void eval_fixture_write(const char *dir);

/* Accuracy of dir/clf.safetensors on `images`, computed in-process (eb_clf_accuracy). */
double eval_fixture_accuracy(const char *dir, const eb_fmnist *images);

/* Writes images x (N, C, side, side) as dataset `name` (and labels y (N) as
 * "y" when given) to the HDF5 file `path`. */
void eval_fixture_samples(const char *path, const char *name, const float *x, int N, int C, int side,
                          const int32_t *y);

#endif
