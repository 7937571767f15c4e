#!/usr/bin/env bash
# Install the Debian packages goldenhour needs, only those missing.
#   scripts/system-deps.sh run    what `make run` needs (PDF fonts/libs; Orthanc if it can)
#   scripts/system-deps.sh test   everything the test suite starts (PostgreSQL, Orthanc,
#                                 Chromium, Node for Prism)
set -euo pipefail

mode=${1:-run}
run_pkgs=(libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)
pacs_pkgs=(orthanc orthanc-dicomweb orthanc-gdcm)
test_pkgs=(postgresql chromium poppler-utils)

case "$mode" in
  run) wanted=("${run_pkgs[@]}" "${pacs_pkgs[@]}") ;;
  test) wanted=("${run_pkgs[@]}" "${pacs_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Node.js may come from another source than Debian (with its own npm): only the
# commands matter.
if [ "$mode" = test ] && ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
# A C compiler builds tools/clockshift for the date-shifted test runs.
if [ "$mode" = test ] && ! command -v cc >/dev/null; then
  missing+=(gcc libc6-dev)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them as root: apt-get install -y ${missing[*]}" >&2
  [ "$mode" = run ] && exit 0   # make run still works: PDF and PACS degrade visibly
  exit 1
fi

echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null
# Debian's orthanc package starts a system service; we run our own instances instead.
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then
  "${sudo[@]}" systemctl stop orthanc || true
fi
