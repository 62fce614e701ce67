/* gnuplot.h — running the gnuplot scripts in plots/ from the commands that draw
 * figures (plot, ablate). */
#ifndef EB_CLI_GNUPLOT_H
#define EB_CLI_GNUPLOT_H

#include <stddef.h>

#include "runtime/ebcache.h"

/* s as the body of a gnuplot single-quoted string ('' stands for ') in buf. */
void eb_gp_quote(char *buf, size_t cap, const char *s);

/* The folder of the .gp scripts into dir: `given` (--scripts), else
 * $EBCACHE_PLOTS, else plots/ of the source tree above the executable.
 * EB_EINPUT naming the folder when it holds no snr.gp. */
eb_status eb_gp_find_scripts(const char *given, char *dir, size_t cap);

/* Renders script scripts_dir/NAME.gp into png with the gnuplot variables
 * `vars` (a "-e" string; the script's output must be the variable out, which
 * is appended here). The PNG is written to a temporary file and renamed;
 * gnuplot's messages are shown only when it fails. EB_ERUNTIME, and no PNG,
 * when gnuplot fails or leaves an incomplete file (its writes failed). */
eb_status eb_gp_render(const char *scripts_dir, const char *name, const char *vars, const char *png);

#endif
