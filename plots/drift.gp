# drift.gp — heat maps of the relative L1 change Σ|F_k − F_prev| / Σ|F_prev| of every
# block's pre-gate attention (left) and MLP (right) output between steps: blocks ×
# steps, log colour scale. Dark = the feature barely moved (cheap to cache); blank =
# undefined (first step). With a cache schedule the maps show the uncached reference
# chain, and a marker on every cell the schedule took from its cache (the cached run's
# drift there is exactly 0, or undefined where it skipped the block).
#
# `ebcache plot` sets dat, out, name, has_ref (see snr.gp). drift_attn.dat / drift_mlp.dat:
# one row per block, one column per step; drift_range.dat: the smallest positive and the
# largest value; reuse_attn.dat / reuse_mlp.dat (with a schedule): "step block" per reuse.
set terminal pngcairo size 1400,560 enhanced font ",10"
set output out
stats dat."drift_range.dat" u 1:2 nooutput name "D"
set multiplot layout 1,2 title name noenhanced
set xlabel "sampling step k (0 = noisiest)"
load dat."t_axis.gp"
set ylabel "block"
set cblabel "relative L1 change (log scale)"
set logscale cb
set cbrange [D_min_x:D_max_y]
set format cb "%.2g"
set cbtics add (1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
set palette defined (0 "#000004", 0.25 "#3b0f70", 0.5 "#8c2981", 0.75 "#de4968", 0.9 "#fe9f6d", 1 "#fcfdbf")
set autoscale xfix
set autoscale yfix
set ytics 1
set key below
chain = has_ref ? " (uncached reference chain)" : ""
do for [m in "attn mlp"] {
    set title (m eq "attn" ? "attention" : "MLP").chain
    cmd = "plot dat.'drift_".m.".dat' matrix w image notitle"
    if (has_ref) { cmd = cmd.", dat.'reuse_".m.".dat' u 1:2 w p pt 2 ps 0.7 lc rgb '#00e5ff' t 'reused by the schedule'" }
    eval cmd
}
unset multiplot
