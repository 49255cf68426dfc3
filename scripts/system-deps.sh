#!/bin/sh
# Debian packages the interop tests drive: DCMTK's command-line DIMSE clients.
# Installs them when missing and we are root on a Debian machine; otherwise says what is missing
# (the tests that need them then skip with that reason).
set -e
missing=""
command -v findscu >/dev/null 2>&1 || missing="$missing dcmtk"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "note: missing Debian packages:$missing (run as root: apt-get install$missing); interop tests will skip"
fi
