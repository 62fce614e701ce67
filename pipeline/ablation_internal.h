/* pipeline/ablation_internal.h — what the ablation's two files share (not public). */
#ifndef EB_PIPELINE_ABLATION_INTERNAL_H
#define EB_PIPELINE_ABLATION_INTERNAL_H

#include "runtime/ebcache.h"

/* mkdir -p path. */
eb_status eb_ablation_make_dirs(const char *path);

#endif
