# snr.gp — SNR per sampling step on a log scale: the schedule's SNR for a signal of
# the samples' power, P·ᾱ/(1−ᾱ) with P = E[x̂0²] of the uncached chain's final samples
# (and P0·ᾱ/(1−ᾱ), P0 = E[x0²] of the data, with data), against the sampled chain's
# (trajectory: x̂_t against the run's own final sample; data: against the true x0),
# for the recorded run and, with a cache schedule, the uncached reference chain.
# A curve above its nominal one: x̂_t is less noisy than the schedule says (its
# residual noise is smaller); below: noisier. The unit-power curve ᾱ/(1−ᾱ) is thin.
#
# `ebcache plot` sets: dat (folder of the .dat files, trailing /), out (PNG path),
# name (plot title), has_data, has_ref (0/1), k0 (start step). snr.dat columns:
#   1 step  2 t  3 ᾱ/(1−ᾱ)  4 P·ᾱ/(1−ᾱ)  5 trajectory  6 data  7 reference trajectory
#   8 reference data  9 P0·ᾱ/(1−ᾱ)  10 P. t_axis.gp: the timestep axis on top.
set terminal pngcairo size 900,620 enhanced font ",10"
set output out
set title name noenhanced
set xlabel "sampling step k (0 = noisiest)"
load dat."t_axis.gp"
set ylabel "SNR"
set logscale y
set format y "10^{%L}"
set key top left
set grid
f = dat."snr.dat"
stats f u 10 nooutput name "P"
run = has_ref ? "cached" : "run"
cmd = "plot f u 1:3 w l lw 1 lc rgb '#999999' t '{/Symbol a}/(1-{/Symbol a}) (unit-power data)'"
whose = has_ref ? "the uncached samples" : "the samples"
cmd = cmd.", f u 1:4 w l lw 2 lc rgb 'black' t sprintf('nominal P{/Symbol a}/(1-{/Symbol a}), P = E[x_0^2] of %s = %.3g', whose, P_max)"
cmd = cmd.", f u 1:5 w lp pt 7 ps 0.5 lw 2 lc rgb '#d62728' t 'trajectory, ".run."'"
if (has_data) { cmd = cmd.", f u 1:9 w l lw 2 dt 4 lc rgb '#1f77b4' t 'nominal for the data power'" }
if (has_data) { cmd = cmd.", f u 1:6 w lp pt 5 ps 0.5 lw 2 lc rgb '#1f77b4' t 'data x0, ".run."'" }
if (has_ref) { cmd = cmd.", f u 1:7 w l dt 2 lw 2 lc rgb '#d62728' t 'trajectory, uncached'" }
if (has_ref && has_data) { cmd = cmd.", f u 1:8 w l dt 2 lw 2 lc rgb '#1f77b4' t 'data x0, uncached'" }
eval cmd
