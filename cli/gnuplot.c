/* cli/gnuplot.c — see gnuplot.h. */
#include "cli/gnuplot.h"

#include "cli/args.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

eb_status eb_gp_find_scripts(const char *given, char *dir, size_t cap) {
    const char *env = getenv("EBCACHE_PLOTS");
    char probe[PATH_MAX];
    if (given || (env && *env)) {
        if (snprintf(dir, cap, "%s", given ? given : env) >= (int)cap ||
            snprintf(probe, sizeof probe, "%s/snr.gp", dir) >= (int)sizeof probe || access(probe, R_OK) != 0)
            return eb_fail(EB_EINPUT, "%s: no gnuplot scripts (snr.gp) there", given ? given : env);
        return EB_OK;
    }
    if (eb_tree_path("plots/snr.gp", dir, cap)) {
        dir[strlen(dir) - strlen("/snr.gp")] = 0;
        return EB_OK;
    }
    return eb_fail(EB_EINPUT, "no gnuplot scripts found: pass --scripts DIR or set EBCACHE_PLOTS to the plots/ folder");
}
