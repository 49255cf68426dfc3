#!/bin/sh
# Debian packages the interop tests drive: DCMTK's command-line DIMSE clients, and for the
# viewer (docs/viewer.md) npm, which fetches OHIF, and chromium, which the browser tests drive.
#   sh scripts/system-deps.sh [NAME...]     NAME: dcmtk, npm, chromium (default: all of them)
# Installs those missing when we are root on a Debian machine; otherwise says what is missing
# (the tests that need them then skip with that reason).
set -e
missing=""
for name in ${*:-dcmtk npm chromium}; do
    case "$name" in
        dcmtk) command -v findscu >/dev/null 2>&1 || missing="$missing dcmtk" ;;
        npm) command -v npm >/dev/null 2>&1 || missing="$missing npm" ;;
        chromium) command -v chromium >/dev/null 2>&1 || missing="$missing chromium" ;;
        *) echo "system-deps.sh: unknown package $name (known: dcmtk npm chromium)" >&2; exit 2 ;;
    esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "note: missing Debian packages:$missing (run as root: apt-get install$missing); interop tests will skip"
fi
