# exposure.gp — the exposure bias per sampling step. Left: the SNR excess of the
# sampled chain over the schedule (trajectory / nominal; with data also data /
# nominal): 1 = no bias. Right (with data): Var(x̂_t − √ᾱ x0) / (1 − ᾱ), the
# measure of Ning et al.: 1 = x̂_t is distributed as q(x_t | x0) says.
#
# `ebcache plot` sets dat, out, name, has_data, has_ref (see snr.gp). exposure.dat columns:
#   1 step  2 t  3 trajectory/nominal  4 data/nominal  5 var ratio
#   6 reference trajectory/nominal  7 reference data/nominal  8 reference var ratio
set terminal pngcairo size (has_data ? 1400 : 900),600 enhanced font ",10"
set output out
f = dat."exposure.dat"
run = has_ref ? "cached" : "run"
set grid
set key top left
set xlabel "sampling step k (0 = noisiest)"
if (has_data) { set multiplot layout 1,2 title name noenhanced } else { set title name noenhanced }
set logscale y
set format y "10^{%L}"
set ylabel "SNR / nominal SNR"
cmd = "plot 1 w l lc rgb 'black' dt 3 t 'no bias', f u 1:3 w lp pt 7 ps 0.5 lw 2 lc rgb '#d62728' t 'trajectory, ".run."'"
if (has_data) { cmd = cmd.", f u 1:4 w lp pt 5 ps 0.5 lw 2 lc rgb '#1f77b4' t 'data x0, ".run."'" }
if (has_ref) { cmd = cmd.", f u 1:6 w l dt 2 lw 2 lc rgb '#d62728' t 'trajectory, uncached'" }
if (has_ref && has_data) { cmd = cmd.", f u 1:7 w l dt 2 lw 2 lc rgb '#1f77b4' t 'data x0, uncached'" }
eval cmd
if (has_data) {
    set title "Var(x_t - {/Symbol \326}{/Symbol a} x_0) / (1 - {/Symbol a})"
    set ylabel "variance ratio"
    cmd = "plot 1 w l lc rgb 'black' dt 3 t 'q(x_t | x_0)', f u 1:5 w lp pt 7 ps 0.5 lw 2 lc rgb '#2ca02c' t '".run."'"
    if (has_ref) { cmd = cmd.", f u 1:8 w l dt 2 lw 2 lc rgb '#2ca02c' t 'uncached'" }
    eval cmd
    unset multiplot
}
