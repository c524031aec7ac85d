#!/usr/bin/env bash
# Install the `export` extra: CPU torch (pinned, 190 MB) + Ultralytics without its dependency list
# (which would pull a multi-GB CUDA torch). Run from the repository root.
set -euo pipefail
pip install -e ".[export]"
pip install --no-deps "ultralytics==8.4.190"
