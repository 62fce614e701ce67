/* pipeline/evaluation_internal.h — what evaluation.c hands to the ImageNet judge
 * (evaluation_imagenet.c); not part of the public API. */
#ifndef EB_PIPELINE_EVALUATION_INTERNAL_H
#define EB_PIPELINE_EVALUATION_INTERNAL_H

#include "pipeline/evaluation.h"
#include "runtime/h5io.h"

/* eb_evaluate with p->inception set (pipeline/evaluation.h). */
eb_status eb_evaluate_imagenet(const eb_eval_params *p, eb_eval_result *r);

/* The fields of eb_eval_fields(p, r) as root attributes of w (a NaN number left out): the one
 * place either judge's METRICS.h5 gets them from. */
void eb_eval_write_fields(eb_h5w *w, const eb_eval_params *p, const eb_eval_result *r);

/* eb_eval_fields with p->inception set. */
int eb_eval_fields_imagenet(const eb_eval_params *p, const eb_eval_result *r, eb_eval_field out[EB_EVAL_FIELDS]);

#endif
