# Shared by scripts/bench.sh, bench-native.sh and bench-stack.sh (sourced): the
# bare-uprobe floor's clean-up and the median of a fixture's own loop time.
# The sourcing script sets $tracefs, $group, $repeats and $lp.

# Removes the uprobes of $group from tracefs.
cleanup() {
  if [ -d "$tracefs/events/$group" ]; then
    echo 0 > "$tracefs/events/$group/enable" 2>/dev/null || true
    grep "^[pr]:$group/" "$tracefs/uprobe_events" 2>/dev/null | while read -r def _; do
      echo "-:${def#*:}" >> "$tracefs/uprobe_events" || true
    done
  fi
}

# median of the loop time (ns) over $repeats runs of "$@"
median() {
  local times=() t
  for _ in $(seq "$repeats"); do
    t=$("$@" 2>/dev/null | sed -n 's/^calls=[0-9]* elapsed_ns=\([0-9]*\)$/\1/p' | tail -1)
    [ -n "$t" ] || { echo "bench: no timing from: $*" >&2; return 1; }
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (repeats + 1) / 2 ))p"
}

# floor BIN FN KINDS [VAR=VALUE...] -- CMD...: the median loop time of CMD
# with bare uprobes (no BPF program) at the sites `logprobe probes BIN FN`
# lists of KINDS (e.g. "entry|return"; a `uretprobe` site gets a return
# probe), planned with the VAR=VALUE environment; empty without tracefs
# or sites.
floor() {
  local bin=$1 fn=$2 kinds=$3 i=0 kind off type envs=()
  shift 3
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  [ -e "$tracefs/uprobe_events" ] || { echo ""; return; }
  while read -r kind off _; do
    type=p
    [ "$kind" = uretprobe ] && type=r
    echo "$type:$group/p$i $bin:$off" >> "$tracefs/uprobe_events"
    i=$((i + 1))
  done < <(env "${envs[@]}" "$lp" probes "$bin" "$fn" | grep -E "^($kinds) ")
  [ "$i" -gt 0 ] || { echo ""; return; }
  echo 1 > "$tracefs/events/$group/enable"
  median "$@"
  echo 0 > "$tracefs/events/$group/enable"
  cleanup
  echo > "$tracefs/trace"
}
