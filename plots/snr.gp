# snr.gp — SNR per sampling step on a log scale: the schedule's nominal ᾱ/(1−ᾱ)
# against the sampled chain's (trajectory: x̂_t against the run's own final sample;
# data: against the true x0), for the recorded run and, with a cache schedule,
# the uncached reference chain. A curve above the nominal one means x̂_t carries
# more signal than the schedule says (exposure bias; caching "intensifies denoising").
#
# `ebcache plot` sets: dat (folder of the .dat files, trailing /), out (PNG path),
# name (plot title), has_data, has_ref (0/1). snr.dat columns:
#   1 step  2 t  3 nominal  4 trajectory  5 data  6 reference trajectory  7 reference data
set terminal pngcairo size 900,600 enhanced font ",10"
set output out
set title name noenhanced
set xlabel "sampling step k (0 = noisiest)"
set ylabel "SNR"
set logscale y
set format y "10^{%L}"
set key top left
set grid
f = dat."snr.dat"
run = has_ref ? "cached" : "run"
cmd = "plot f u 1:3 w l lw 2 lc rgb 'black' t 'nominal {/Symbol a}/(1-{/Symbol a})'"
cmd = cmd.", f u 1:4 w lp pt 7 ps 0.5 lw 2 lc rgb '#d62728' t 'trajectory, ".run."'"
if (has_data) { cmd = cmd.", f u 1:5 w lp pt 5 ps 0.5 lw 2 lc rgb '#1f77b4' t 'data x0, ".run."'" }
if (has_ref) { cmd = cmd.", f u 1:6 w l dt 2 lw 2 lc rgb '#d62728' t 'trajectory, uncached'" }
if (has_ref && has_data) { cmd = cmd.", f u 1:7 w l dt 2 lw 2 lc rgb '#1f77b4' t 'data x0, uncached'" }
eval cmd
