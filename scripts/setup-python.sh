#!/usr/bin/env bash
# Installs the real OpenStack clients (python-openstackclient, openstacksdk)
# into ./.venv from PyPI. Idempotent: a venv that already imports both is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ -x "$venv/bin/openstack" ] && "$venv/bin/python" -c 'import openstack, openstackclient' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check python-openstackclient openstacksdk
"$venv/bin/openstack" --version
