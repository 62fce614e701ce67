/* analyze/plots.h — the figures of a recording (docs/recording.md): its
 * columns as .dat text files and the PNGs the gnuplot scripts of plots/ draw
 * from them (snr, exposure, drift, eps and, for a cached recording, caching). */
#ifndef EB_ANALYZE_PLOTS_H
#define EB_ANALYZE_PLOTS_H

#include "runtime/ebcache.h"

/* Reads recording `path`, writes its .dat files and PNGs into dir (created
 * if missing) with the scripts in scripts_dir. A value that should be defined
 * and is not (NaN, Inf) is refused with its dataset and index (EB_EINPUT).
 * *cached (may be NULL) says whether the recording has an uncached reference
 * (then caching.png is drawn too). */
eb_status eb_plot_recording(const char *path, const char *dir, const char *scripts_dir, int *cached);

#endif
