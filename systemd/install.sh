#!/bin/sh
# Install evse-gatekeeper as a system service on the reference board (`make install-system`),
# or remove it (`--uninstall`). Run as root from the checkout.
#
#   the venv          /opt/evse-gatekeeper/venv   (the project with the board's extra)
#   the config        /etc/evse-gatekeeper/config.toml   (from config/reference-board.toml,
#                                                         never overwritten)
#   the unit          /etc/systemd/system/evse-gatekeeper.service   (enabled, not started)
#   the user          evse-gatekeeper (system, no login), in the gpio, spi and dialout groups
#                     (dialout: the energy meter's serial port)
#
# --root DIR stages the files under DIR instead (no user, no systemctl, no venv unless
# --venv): for packaging and for the tests. --extra pi|pi5 picks the GPIO library
# (RPi.GPIO on a Pi <= 4, rpi-lgpio on a Pi 5; default: from /proc/device-tree/model).
# Uninstall keeps /etc/evse-gatekeeper and /var/lib/evse-gatekeeper (the journal and the
# approval list are records), and says so.
set -eu

ROOT=""
UNINSTALL=0
VENV=auto
EXTRA=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$2"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        --venv) VENV=yes; shift ;;
        --extra) EXTRA="$2"; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$VENV" = auto ] && { [ -z "$ROOT" ] && VENV=yes || VENV=no; }

HERE=$(cd "$(dirname "$0")/.." && pwd)
OPT="$ROOT/opt/evse-gatekeeper"
ETC="$ROOT/etc/evse-gatekeeper"
UNIT="$ROOT/etc/systemd/system/evse-gatekeeper.service"
SERVICE_USER=evse-gatekeeper

live() { [ -z "$ROOT" ]; }

if [ "$UNINSTALL" = 1 ]; then
    if live; then systemctl disable --now evse-gatekeeper.service 2>/dev/null || true; fi
    rm -f "$UNIT"
    rm -rf "$OPT"
    if live; then systemctl daemon-reload; fi
    echo "removed the unit and $OPT; kept $ETC and /var/lib/evse-gatekeeper (delete them by hand if wanted)"
    exit 0
fi

if live && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (or stage with --root DIR)" >&2
    exit 1
fi

if live && ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/evse-gatekeeper \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi
if live; then
    for group in gpio spi dialout; do
        getent group "$group" >/dev/null || groupadd --system "$group"
        usermod --append --groups "$group" "$SERVICE_USER"
    done
fi

if live && ! command -v nft >/dev/null 2>&1; then
    apt-get install -y -q nftables  # the bridge gate's filter (docs/hardware.md)
fi

install -d -m 0755 "$OPT"
if [ "$VENV" = yes ]; then
    if [ -z "$EXTRA" ]; then
        EXTRA=pi
        grep -q "Raspberry Pi 5" /proc/device-tree/model 2>/dev/null && EXTRA=pi5
    fi
    python3 -m venv "$OPT/venv"
    "$OPT/venv/bin/pip" install --quiet --upgrade pip
    "$OPT/venv/bin/pip" install --quiet "$HERE[$EXTRA]"
fi

install -d -m 0750 "$ETC"
if [ ! -e "$ETC/config.toml" ]; then
    install -m 0640 "$HERE/config/reference-board.toml" "$ETC/config.toml"
    echo "installed $ETC/config.toml from config/reference-board.toml: check the pin map"
else
    echo "kept the existing $ETC/config.toml"
fi
install -d -m 0755 "$(dirname "$UNIT")"
install -m 0644 "$HERE/systemd/evse-gatekeeper.service" "$UNIT"

if live; then
    chgrp "$SERVICE_USER" "$ETC" "$ETC/config.toml"
    systemctl daemon-reload
    systemctl enable evse-gatekeeper.service
    echo "enabled evse-gatekeeper.service: start it with 'systemctl start evse-gatekeeper'"
else
    echo "staged under $ROOT"
fi
