#!/bin/sh
# System part of `make setup` on Debian 12 / Ubuntu: QGIS and GDAL from apt when missing, and the broken
# Debian qgis_process wrapper. Fast when nothing is to do: it only looks at files and dpkg's records.
set -eu

PACKAGES="qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-venv xvfb"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; return; fi
    echo "setup: this step needs root. Run this once, then 'make setup' again:" >&2
    echo "    sudo $*" >&2
    exit 1
}

if [ ! -x /usr/bin/qgis_process.bin ] || ! dpkg -s $PACKAGES >/dev/null 2>&1; then
    echo "setup: installing QGIS and GDAL from apt ($PACKAGES)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
    else
        as_root sh -c "apt-get update && apt-get install -y --no-install-recommends $PACKAGES"
    fi
fi

# Debian's /usr/bin/qgis_process sources /etc/default/qgis, whose QGIS_OPTS='--noversioncheck' is an option of the
# desktop qgis only: qgis_process then fails every call with "Command --noversioncheck not known!".
# /usr/bin/qgis_process.bin always works. The fix sets QGIS_OPTS for the desktop qgis alone.
DEFAULTS=/etc/default/qgis
if ! QT_QPA_PLATFORM=offscreen qgis_process --version >/dev/null 2>&1; then
    if grep -qx "QGIS_OPTS='--noversioncheck'" "$DEFAULTS" 2>/dev/null; then
        if [ "$(id -u)" -eq 0 ]; then
            cp -p "$DEFAULTS" "$DEFAULTS.lvpc-backup"
            sed -i "s|^QGIS_OPTS='--noversioncheck'\$|case \"\$0\" in *qgis_process*) ;; *) QGIS_OPTS='--noversioncheck' ;; esac  # qgis_process rejects this option (LVPC setup)|" "$DEFAULTS"
            echo "setup: fixed the broken qgis_process wrapper: $DEFAULTS now sets QGIS_OPTS='--noversioncheck' only for"
            echo "       the desktop qgis (qgis_process refused it). The original file is kept as $DEFAULTS.lvpc-backup."
        else
            echo "setup: Debian's qgis_process wrapper is broken (\"Command --noversioncheck not known!\")." >&2
            echo "       /usr/bin/qgis_process.bin works meanwhile; to fix the wrapper run:" >&2
            echo "    sudo sed -i \"s|^QGIS_OPTS='--noversioncheck'\\\$|case \\\"\\\$0\\\" in *qgis_process*) ;; *) QGIS_OPTS='--noversioncheck' ;; esac|\" $DEFAULTS" >&2
        fi
    else
        echo "setup: warning: 'qgis_process --version' fails and $DEFAULTS is not the known broken one;" >&2
        echo "       use /usr/bin/qgis_process.bin, which works." >&2
    fi
fi
