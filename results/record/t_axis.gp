set link x2
set x2label "timestep t"
set x2tics ("999" 0, "897" 5, "795" 10, "693" 15, "591" 20, "489" 25, "387" 30, "285" 35, "183" 40, "82" 45, "0" 49)
set xtics nomirror
