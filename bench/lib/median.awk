# median.awk: reads what several runs of one bench script printed and
# prints each of its "ratio" lines once, every decimal figure in it
# replaced by its median over the runs and [lowest-highest]. Lines are
# matched by their shape (the text with the decimal figures taken out), so
# a script's different ratio lines stay apart. bench/run.sh uses it when
# REPEAT is above 1.
/^ratio/ {
  rest = $0; key = ""; n = 0
  while (match(rest, /[0-9]+\.[0-9]+/)) {
    key = key substr(rest, 1, RSTART - 1) "\001"
    f[++n] = substr(rest, RSTART, RLENGTH) + 0
    rest = substr(rest, RSTART + RLENGTH)
  }
  key = key rest
  if (!(key in runs)) { order[++keys] = key; nf[key] = n }
  r = ++runs[key]
  for (i = 1; i <= n; i++) val[key, i, r] = f[i]
}
END {
  for (k = 1; k <= keys; k++) {
    key = order[k]; r = runs[key]; out = ""; rest = key
    for (i = 1; i <= nf[key]; i++) {
      for (j = 1; j <= r; j++) s[j] = val[key, i, j]
      for (a = 2; a <= r; a++) { # insertion sort: a handful of runs
        x = s[a]
        for (b = a - 1; b >= 1 && s[b] > x; b--) s[b + 1] = s[b]
        s[b + 1] = x
      }
      med = (r % 2) ? s[(r + 1) / 2] : (s[r / 2] + s[r / 2 + 1]) / 2
      p = index(rest, "\001")
      out = out substr(rest, 1, p - 1) sprintf("%.2f [%.2f-%.2f]", med, s[1], s[r])
      rest = substr(rest, p + 1)
    }
    printf "median of %d runs: %s%s\n", r, out, rest
  }
}
