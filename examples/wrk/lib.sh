# Shared by the scripts of examples/wrk (sourced by them, not run).

# Stops the script unless every tool named is installed.
need() {
    local tool package
    for tool in "$@"; do
        case "$tool" in
            taskset) package=util-linux ;;
            perf) package=linux-perf ;;
            *) package=$tool ;;
        esac
        command -v "$tool" > /dev/null ||
            { echo "$0: $tool is not installed (apt-get install -y $package)" >&2; exit 1; }
    done
}

# The CPU time (user + system, in clock ticks) process $1 has used.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Waits until file $1 (a server's output) says `ready`.
ready() { until grep -q ready "$1" 2> /dev/null; do sleep 0.2; done; }

# The median of the numbers on standard input, one a line, printed with
# format $1 (default %.3f).
median() {
    sort -n | awk -v format="${1:-%.3f}" '{ r[NR] = $1 } END {
        printf format, (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'
}
