#!/usr/bin/env bash
# f32 vs q8 vs q4 weights on stories260K-relu and babyllama-relu: greedy agreement with f32, mean KL(f32 || q), model
# file size and dense tokens/s with 1 and 2 threads, as a Markdown table (bench/Quant/Program.cs says how).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet run -c Release --project bench/Quant -- "${SHARED:-../shared}" artifacts/bench/quant
