#!/usr/bin/env bash
# Build the cached virtual environment once, safely when several `make` runs start together.
# Usage: tools/make_venv.sh PYTHON VENV LOCKFILE
set -euo pipefail
python="$1"; venv="$2"; lock="$3"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -f "$venv/.complete" ]; then exit 0; fi
echo "Creating the environment in $venv (first run on this machine: a few minutes)" >&2
rm -rf "$venv.partial" "$venv"
"$python" -m venv "$venv.partial"
"$venv.partial/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
mv "$venv.partial" "$venv"
# venv scripts hard-code their folder; repoint them after the rename
grep -rlI "$venv.partial" "$venv/bin" | xargs -r sed -i "s|$venv.partial|$venv|g"
touch "$venv/.complete"
