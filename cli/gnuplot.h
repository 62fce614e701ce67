/* cli/gnuplot.h — where the commands that draw figures (plot, ablate) find
 * the gnuplot scripts; analyze/gnuplot.h runs them. */
#ifndef EB_CLI_GNUPLOT_H
#define EB_CLI_GNUPLOT_H

#include <stddef.h>

#include "runtime/ebcache.h"

/* The folder of the .gp scripts into dir: `given` (--scripts), else
 * $EBCACHE_PLOTS, else plots/ of the source tree above the executable.
 * EB_EINPUT naming the folder when it holds no snr.gp. */
eb_status eb_gp_find_scripts(const char *given, char *dir, size_t cap);

#endif
