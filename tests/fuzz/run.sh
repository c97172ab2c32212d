#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make fuzz / make fuzz-long: runs each libFuzzer harness for $1 seconds (default 60) from the seed corpus in
# tests/fuzz/corpus/<harness> and the kept regressions (tests/fuzz/regressions/<harness>-*), prints its executions,
# coverage and crashes, and fails on any crash (the input is kept in build/fuzz/crashes/). UBSan is fatal
# (-fno-sanitize-recover=all) and the harness's stderr is kept in build/fuzz/fuzz-<harness>.log with any report;
# only its stdout is discarded (-close_fd_mask=1).
set -u
secs=${1:-60}
bin=${2:-build/fuzz}
mkdir -p "$bin/crashes"
fail=0
printf '%-10s %14s %10s %8s %8s\n' harness executions exec/s coverage crashes
for t in job xml imds sigv4 archive report records laptop profile credreq manifest; do
  work="$bin/corpus-$t"
  mkdir -p "$work"
  # the regressions kept for this harness join its corpus: each is run first, every time
  for r in tests/fuzz/regressions/"$t"-*; do [ -f "$r" ] && cp -f "$r" "$work/"; done
  rm -f "$bin/crashes/$t-"*
  log="$bin/fuzz-$t.log"
  "$bin/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$bin/crashes/$t-" \
    -close_fd_mask=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
  crashes=$(ls "$bin/crashes" 2>/dev/null | grep -c "^$t-" || true)
  printf '%-10s %14s %10s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashes"
  if [ $rc -ne 0 ] || [ "$crashes" != 0 ]; then
    fail=1
    echo "FAIL fuzz_$t (exit $rc); tail of $log:"; tail -30 "$log"
  fi
done
exit $fail
