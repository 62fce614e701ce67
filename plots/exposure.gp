# exposure.gp — the exposure bias per sampling step. Left: each SNR over the schedule's
# SNR for a signal of the same power (/exposure/snr_ratio: trajectory against its own
# final samples; /exposure/snr_data_ratio: against the data x0). That is the schedule's
# noise variance (1 − ᾱ) over the one x̂_t carries: 1 = no exposure bias, above 1 =
# x̂_t is less noisy than the schedule says, below 1 = noisier. Right (with data):
# Var(x̂_t − √ᾱ x0) / (1 − ᾱ), the measure of Ning et al.: 1 = as q(x_t | x0).
#
# `ebcache plot` sets dat, out, name, has_data, has_ref, k0 (see snr.gp). exposure.dat:
#   1 step  2 t  3 trajectory ratio  4 data ratio  5 var ratio
#   6 reference trajectory ratio  7 reference data ratio  8 reference var ratio
set terminal pngcairo size (has_data ? 1400 : 900),620 enhanced font ",10"
set output out
f = dat."exposure.dat"
run = has_ref ? "cached" : "run"
set grid
set key top left
set xlabel "sampling step k (0 = noisiest)"
load dat."t_axis.gp"
if (has_data) { set multiplot layout 1,2 title name noenhanced } else { set title name noenhanced }
set ylabel "SNR / (P {/Symbol a}/(1-{/Symbol a}))  =  (1-{/Symbol a}) / noise power of x_t"
cmd = "plot 1 w l lc rgb 'black' dt 3 t 'no bias', f u 1:3 w lp pt 7 ps 0.5 lw 2 lc rgb '#d62728' t 'trajectory, ".run."'"
if (has_data) { cmd = cmd.", f u 1:4 w lp pt 5 ps 0.5 lw 2 lc rgb '#1f77b4' t 'data x0, ".run."'" }
if (has_ref) { cmd = cmd.", f u 1:6 w l dt 2 lw 2 lc rgb '#d62728' t 'trajectory, uncached'" }
if (has_ref && has_data) { cmd = cmd.", f u 1:7 w l dt 2 lw 2 lc rgb '#1f77b4' t 'data x0, uncached'" }
eval cmd
if (has_data) {
    set logscale y
    set title "Var(x_t - {/Symbol \326}{/Symbol a} x_0) / (1 - {/Symbol a})"
    set ylabel "variance ratio"
    cmd = "plot 1 w l lc rgb 'black' dt 3 t 'q(x_t | x_0)', f u 1:5 w lp pt 7 ps 0.5 lw 2 lc rgb '#2ca02c' t '".run."'"
    if (has_ref) { cmd = cmd.", f u 1:8 w l dt 2 lw 2 lc rgb '#2ca02c' t 'uncached'" }
    eval cmd
    unset multiplot
}
