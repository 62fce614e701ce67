# pareto.gp — quality against speed for an ablation grid (`ebcache ablate`): the
# FD of each method's samples against the measured wall-clock speedup over the
# uncached run, one curve per method through its speed targets, with 95%
# confidence bars over seeds. Lower and further right is better.
#
# `ebcache ablate` sets: dat (the .dat file), out (PNG path), name (title),
# blocks (number of methods). The .dat holds one block per method, its first
# line the method's name; columns: 1 measured speedup  2 FD  3 speedup half-width
# 4 FD half-width  5 FLOP speedup.
set terminal pngcairo size 900,600 enhanced font ",10"
set output out
set title name noenhanced
set xlabel "measured speedup over uncached (wall-clock)"
set ylabel "FD (classifier features; lower is better)"
set key outside right top noenhanced
set grid
set offsets 0.05, 0.05, 0, 0
# one distinct colour per method (gnuplot's default cycle repeats after 8)
colours = "#000000 #1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #17becf #bcbd22 #7f7f7f"
plot for [i=0:blocks-1] dat index i u 1:2:($1-$3):($1+$3):($2-$4):($2+$4) w xyerrorlines lw 2 pt 7 ps 1 \
     lc rgb word(colours, i % 11 + 1) title columnheader(1)
