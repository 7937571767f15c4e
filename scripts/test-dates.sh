#!/usr/bin/env bash
# Run the tests that touch time with the machine's clock moved, so that no test passes
# only on the day it was written, and the UK clock changes are crossed.
#
#   scripts/test-dates.sh            every instant below, one pytest run each
#   scripts/test-dates.sh ci         the one shifted run `make test` adds: a year ahead,
#                                    in a time zone far from London
#   scripts/test-dates.sh NAME...    the named instants only (see `list`)
#   scripts/test-dates.sh list       print the instants
#
# Each run moves the wall clock by an offset from now (it keeps running) for pytest and
# every process it starts (PostgreSQL, Orthanc, Prism, the SMTP server, the app's own
# processes), with tools/clockshift preloaded; the monotonic clock is left alone (why
# not Debian's faketime: see tools/clockshift/clockshift.c). Extra pytest arguments go
# in PYTEST_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
# The tests whose answers depend on the date or the hour: paging and its rota, clocks
# and treatment windows, audit milestones and statistics, decision records, the seed.
TESTS=(tests/paging tests/audit tests/records tests/workflow/test_clocks.py
       tests/workflow/test_local_times.py tests/workflow/test_pages.py
       tests/foundation/test_rota.py tests/foundation/test_rota_gaps.py
       tests/foundation/test_seed.py)

# name  instant (UTC, or +N days from now)  TZ  what it is
INSTANTS=(
  "year-ahead        +365d                  Asia/Kolkata      a year from today, machine in India"
  "march-0030        2027-03-28T00:30:00Z   Europe/London     clocks go forward: 00:30 GMT"
  "march-0100        2027-03-28T00:59:00Z   Europe/London     one minute before 01:00 GMT becomes 02:00 BST (01:30 does not exist)"
  "march-0230        2027-03-28T01:30:00Z   Europe/London     02:30 BST"
  "october-0030      2027-10-30T23:30:00Z   Europe/London     clocks go back: 00:30 BST"
  "october-0130-bst  2027-10-31T00:30:00Z   Europe/London     the first 01:30 (BST)"
  "october-0130-gmt  2027-10-31T01:30:00Z   America/New_York  the second 01:30 (GMT)"
  "october-0230      2027-10-31T02:30:00Z   Europe/London     02:30 GMT"
  "leap-day          2028-02-29T12:00:00Z   Pacific/Auckland  29 February 2028"
  "new-year-eve      2027-12-31T23:59:00Z   UTC               31 December, 23:59"
)

offset_of() {  # seconds from now to the instant
  local when=$1
  if [[ $when == +*d ]]; then
    echo $(( ${when:1:-1} * 86400 ))
  else
    echo $(( $(date -u -d "$when" +%s) - $(date -u +%s) ))
  fi
}

run_one() {
  local name=$1 when=$2 zone=$3 what=$4 offset
  offset=$(offset_of "$when")
  echo "== $name: $what (clock $when, TZ=$zone)"
  TZ=$zone GOLDENHOUR_CLOCK_OFFSET=$offset LD_PRELOAD=$SHIFT \
    "$PY" -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider ${PYTEST_ARGS:-} "${TESTS[@]}"
}

SHIFT=$PWD/tools/clockshift/clockshift.so
make -s tools/clockshift/clockshift.so

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(all)
failed=()
for entry in "${INSTANTS[@]}"; do
  read -r name when zone what <<<"$entry"
  case " ${wanted[*]} " in
    *" list "*) printf '%-18s %-22s %-17s %s\n' "$name" "$when" "$zone" "$what"; continue ;;
    *" all "*) ;;
    *" ci "*) [ "$name" = year-ahead ] || continue ;;
    *" $name "*) ;;
    *) continue ;;
  esac
  run_one "$name" "$when" "$zone" "$what" || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED under shifted clocks: ${failed[*]}" >&2
  exit 1
fi
