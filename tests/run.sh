#!/bin/sh
# tests/run.sh — run every test suite, each in its own process with a time limit, and sum.
#
# usage: sh tests/run.sh MOONBEAM "C test binaries" "spec files"
# Prints one line per suite, the output of failing suites, and at the end
# "N passed, N failed" summed over all suites. Exit status 0 only if nothing failed.

bin=$1
ctests=$2
specs=$3
busted=$(command -v busted || echo /usr/bin/busted)
passed=0
failed=0

# suite NAME PASSED FAILED OUTPUT
suite() {
  passed=$((passed + $2))
  failed=$((failed + $3))
  printf '%-40s %4d passed, %d failed\n' "$1" "$2" "$3"
  if [ "$3" -gt 0 ]; then printf '%s\n' "$4" | sed 's/^/    /'; fi
}

for t in $ctests; do
  out=$(timeout 300 "$t" 2>&1)
  rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  p=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
  f=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
  if [ -z "$p" ]; then p=0; f=1; out="$out
(exit status $rc, no summary line)"; fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; out="$out
(exit status $rc)"; fi
  suite "$(basename "$t")" "$p" "$f" "$out"
done

# Specs that start the binary themselves (tests/support.lua) start this one.
MOONBEAM_BIN=$bin
export MOONBEAM_BIN

for s in $specs; do
  out=$(timeout 600 "$bin" "$busted" --ignore-lua -o plainTerminal "$s" 2>&1)
  rc=$?
  sum=$(printf '%s\n' "$out" | grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' | tail -n 1)
  if [ -z "$sum" ]; then
    suite "$s" 0 1 "$out
(exit status $rc, no busted summary)"
    continue
  fi
  p=$(printf '%s\n' "$sum" | awk '{print $1}')
  f=$(printf '%s\n' "$sum" | awk '{print $4 + $7}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; out="$out
(exit status $rc)"; fi
  suite "$s" "$p" "$f" "$out"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
