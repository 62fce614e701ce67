/* analyze/gnuplot.h — running the gnuplot scripts of plots/ (the CLI's plot
 * command, the ablation report). */
#ifndef EB_ANALYZE_GNUPLOT_H
#define EB_ANALYZE_GNUPLOT_H

#include <stddef.h>

#include "runtime/ebcache.h"

/* s as the body of a gnuplot single-quoted string ('' stands for ') in buf. */
void eb_gp_quote(char *buf, size_t cap, const char *s);

/* Renders script scripts_dir/NAME.gp into png with the gnuplot variables
 * `vars` (a "-e" string; the script's output must be the variable out, which
 * is appended here). The PNG is written through runtime/atomic.h (EB_EINPUT
 * for an output path it refuses); gnuplot's messages are shown only when it
 * fails. EB_ERUNTIME, and no PNG, when gnuplot fails or leaves an incomplete
 * file (its writes failed). */
eb_status eb_gp_render(const char *scripts_dir, const char *name, const char *vars, const char *png);

#endif
