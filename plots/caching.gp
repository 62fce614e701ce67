# caching.gp — what the cache schedule did to the chain (recordings with --schedule).
# Left: cached ÷ uncached, per step, of the trajectory SNR (and data SNR) and of the
# per-sample ‖ε‖ (mean over samples, min..max band): 1 = caching changed nothing.
# Right: /deviation/x = ‖x̂_cached − x̂_uncached‖ / ‖x̂_uncached‖ and /deviation/eps,
# the same for ε, log scale (linear when both are 0 throughout).
#
# `ebcache plot` sets dat, out, name, has_data. caching.dat columns:
#   1 step  2 t  3 trajectory SNR ratio  4 data SNR ratio  5 mean ‖ε‖ ratio  6 min  7 max
#   8 deviation x  9 deviation ε
set terminal pngcairo size 1400,620 enhanced font ",10"
set output out
f = dat."caching.dat"
set grid
set key top left
set xlabel "sampling step k (0 = noisiest)"
load dat."t_axis.gp"
set multiplot layout 1,2 title name noenhanced
set title "cached / uncached"
set ylabel "ratio"
cmd = "plot f u 1:6:7 w filledcurves lc rgb '#c7e9c0' fs transparent solid 0.5 t '||{/Symbol e}|| min..max over samples'"
cmd = cmd.", f u 1:5 w lp pt 7 ps 0.5 lw 2 lc rgb '#238b45' t '||{/Symbol e}||, mean over samples'"
cmd = cmd.", f u 1:3 w lp pt 5 ps 0.5 lw 2 lc rgb '#d62728' t 'trajectory SNR'"
if (has_data) { cmd = cmd.", f u 1:4 w lp pt 9 ps 0.5 lw 2 lc rgb '#1f77b4' t 'data SNR'" }
cmd = cmd.", 1 w l lc rgb 'black' dt 3 t 'caching changes nothing'"
eval cmd
set title "deviation from the uncached chain"
set ylabel "relative L2 distance"
stats f u ($8 + $9) nooutput name "DEV"
if (DEV_max > 0) { set logscale y; set format y "10^{%L}" }  # all 0 (a schedule that reuses nothing): linear
plot f u 1:8 w lp pt 7 ps 0.5 lw 2 lc rgb '#6a51a3' t '/deviation/x', \
     f u 1:9 w lp pt 5 ps 0.5 lw 2 lc rgb '#e6550d' t '/deviation/eps'
unset multiplot
