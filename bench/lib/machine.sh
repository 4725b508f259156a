# Sourced by bench scripts: machine prints one line naming what a run
# measured on: the CPU (vendor and model), how many, the kernel, and the
# mitigations that set what a system call costs (page-table isolation on
# Intel, the return-stack ones on AMD), so that figures from an AMD and an
# Intel machine are never compared unawares.
machine() {
  local v=/sys/devices/system/cpu/vulnerabilities m
  m=$(for f in meltdown spec_rstack_overflow retbleed; do
        [ -r "$v/$f" ] && printf '%s: %s; ' "$f" "$(cat "$v/$f")"
      done)
  echo "machine: $(lscpu | awk -F: '/^Vendor ID/{gsub(/^ +/,"",$2); v=$2} /^Model name/{gsub(/^ +/,"",$2); m=$2} END{print v ", " m}'), $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); ${m%; }"
}
