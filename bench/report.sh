#!/usr/bin/env bash
# The benchmark report, every figure measured in one run: docs/benchmarks-PROFILE.md with its JSON and docs/charts/.
#   bench/report.sh [--profile quick|full] [--stages LIST] [--out DIR] [--cpu ISA]
# Our binaries are built with publish.sh --cpu ISA (default native: this machine's instruction set, as llama.cpp's
# GGML_NATIVE build uses it).
# quick (about 45 minutes): the 1.1B llama shape for the paper's tables and sweeps, the 110M shape in every weight type
# for dense, stories260K-relu for fidelity. full (hours; ~60 GB of disk): OPT-6.7B shape for the paper's tables,
# Llama-2-7B shape against llama.cpp, both ReLU reference models for fidelity.
# Memory limits need root (a memory cgroup); llama.cpp is optional: LLAMA_CPP=DIR names a build with bin/llama-bench
# and bin/llama-simple.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet run -c Release --project bench/Report -- "$@"
