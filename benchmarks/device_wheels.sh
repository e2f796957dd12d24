#!/usr/bin/env bash
# Run after ../shared/device/pack.sh, from the project root: adds to .device/wheels the Python 3.12
# wheels the test suite needs on the GPU machine beyond pack.sh's list (jupytext, for the notebook
# pairing tests, and its markdown parser). .device/setup.sh installs every wheel in that folder.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -d .device/wheels ] || { echo "device_wheels.sh: run ../shared/device/pack.sh first" >&2; exit 1; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  -d .device/wheels jupytext==1.19.6 markdown-it-py==4.3.0 mdit-py-plugins==0.7.0 mdurl==0.1.2
echo "device_wheels.sh: $(ls .device/wheels/*.whl | wc -l) wheels in .device/wheels"
