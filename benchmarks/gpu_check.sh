#!/usr/bin/env bash
# One-GPU check of pre-training speed, memory and fidelity (under five minutes on one GPU,
# compilation and capture included).
#
#   benchmarks/gpu_check.sh                 # GPU: writes docs/benchmarks/gpu_check.{json,md}
#   benchmarks/gpu_check.sh --quick --out /tmp/check   # CPU-sized smoke run (CI)
#
# PYTHON selects the interpreter (default: python); all options go to benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
