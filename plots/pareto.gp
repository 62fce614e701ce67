# pareto.gp — quality against speed for an ablation grid (`ebcache ablate`), in
# three panels, one curve per method through its sweep points (speed targets or
# native parameter values), sorted by the FLOP speedup each point ran at:
#   1. paired ΔFD (classifier features) against the FLOP speedup,
#   2. paired Δpixel FD (pixel principal components, the second judge) against
#      the FLOP speedup,
#   3. paired ΔFD against the measured (interleaved, wall-clock) speedup: the
#      axis along which the report reads every curve at EB-Cache's speed.
# ΔFD is each seed's difference to the uncached run of the same seed, with 95%
# confidence bars over seeds; below 0 is better than uncached, right is faster.
#
# `ebcache ablate` sets: dat (the .dat file), out (PNG path), name (title),
# blocks (number of methods). The .dat holds one block per method, its first
# line the method's name; columns: 1 measured speedup  2 FD  3 FD half-width
# 4 FLOP speedup  5 ΔFD  6 its half-width  7 Δpixel FD  8 its half-width.
set terminal pngcairo size 1500,520 enhanced font ",10"
set output out
# one distinct colour per method (gnuplot's default cycle repeats after 8)
colours = "#000000 #1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #17becf #bcbd22 #7f7f7f"
set multiplot layout 1,3 title name noenhanced
set grid
set offsets 0.05, 0.05, 0, 0
set key top left noenhanced font ",8"
set xlabel "FLOP speedup over uncached"
set ylabel "ΔFD vs uncached, classifier features (paired; lower is better)"
plot for [i=0:blocks-1] dat index i u 4:5:($5-$6):($5+$6) w yerrorlines lw 2 pt 7 ps 1 \
     lc rgb word(colours, i % 11 + 1) title columnheader(1), 0 w l lc rgb "#999999" dt 2 notitle
unset key
set ylabel "Δpixel FD vs uncached, pixel PCA (paired; lower is better)"
plot for [i=0:blocks-1] dat index i u 4:7:($7-$8):($7+$8) w yerrorlines lw 2 pt 7 ps 1 \
     lc rgb word(colours, i % 11 + 1) title columnheader(1), 0 w l lc rgb "#999999" dt 2 notitle
set xlabel "measured speedup (interleaved wall-clock)"
set ylabel "ΔFD vs uncached, classifier features (paired; lower is better)"
plot for [i=0:blocks-1] dat index i u 1:5:($5-$6):($5+$6) w yerrorlines lw 2 pt 7 ps 1 \
     lc rgb word(colours, i % 11 + 1) title columnheader(1), 0 w l lc rgb "#999999" dt 2 notitle
unset multiplot
