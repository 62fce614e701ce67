# drift.gp — heat maps of the relative L1 change Σ|F_k − F_prev| / Σ|F_prev| of every
# block's pre-gate attention (left) and MLP (right) output between steps: blocks ×
# steps. Dark = the feature barely moved (cheap to cache); blank = undefined (first
# step, or the block was skipped). With a cache schedule the maps show the uncached
# reference chain (the cached one drifts exactly 0 wherever it reuses).
#
# `ebcache plot` sets dat, out, name, has_ref (see snr.gp). drift_attn.dat / drift_mlp.dat:
# one row per block, one column per step; drift_max.dat: the largest finite value.
set terminal pngcairo size 1400,520 enhanced font ",10"
set output out
stats dat."drift_max.dat" u 1 nooutput name "D"
set multiplot layout 1,2 title name noenhanced
set xlabel "sampling step k (0 = noisiest)"
set ylabel "block"
set cblabel "relative L1 change"
set cbrange [0:(D_max > 0 ? D_max : 1)]
set palette defined (0 "#000004", 0.25 "#3b0f70", 0.5 "#8c2981", 0.75 "#de4968", 0.9 "#fe9f6d", 1 "#fcfdbf")
set autoscale xfix
set autoscale yfix
set ytics 1
chain = has_ref ? " (uncached reference chain)" : ""
set title "attention".chain
plot dat."drift_attn.dat" matrix w image notitle
set title "MLP".chain
plot dat."drift_mlp.dat" matrix w image notitle
unset multiplot
