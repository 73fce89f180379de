#!/usr/bin/env bash
# LLM in a flash on a 2 GB model: naive (whole FFN read from flash each token) vs flash (predicted neurons, cached,
# read sparsely) at a 50% DRAM budget, side by side in one `bench` run, with an I/O probe of the disk.
# The model is SYNTHETIC (bench/RandomCheckpoint.cs): a 1.1B-parameter llama shape whose gate rows make ~5% of the
# neurons pass FATReLU predictably, like a ReLU-fine-tuned model; it measures speed, not quality. Its own samples are
# degenerate (a random model repeats itself), so it is calibrated on English text (README + DESIGN) instead, and the
# benchmark prompt is a sentence of English, so that consecutive tokens use different neurons. bench reports the
# prompt's forward passes (time to first token) apart from decoding; 64 generated tokens (TOKENS) give decode 63 passes.
# Takes ~15 minutes the first time (checkpoint, conversion, calibration), a few minutes after (naive mode reads the
# whole FFN for each of the ~100 forward passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${SHARED:-../shared}
out=artifacts/bench
dir=artifacts/synthetic-1b-fatrelu
mkdir -p "$out"
[[ -f $out/synthetic-1b.bin ]] ||
  dotnet run bench/RandomCheckpoint.cs -- "$out/synthetic-1b.bin" 2048 8192 16 16 4 32000 1024 64
if [[ ! -f $dir/calibrated ]]; then
  ./publish.sh modelspecs/synthetic-1b-fatrelu.yaml --weights "$out/synthetic-1b.bin" \
    --tokenizer "$shared/models/llama2-tokenizer/tokenizer.bin" --no-calibrate >/dev/null
  cat README.md "$shared/DESIGN.md" > "$out/calibration.txt"
  "$dir/build/synthetic-1b-fatrelu" calibrate --model "$dir/synthetic-1b-fatrelu.afm" --text "$out/calibration.txt" --tokens 1024
  touch "$dir/calibrated"
fi
prompt="AotFlash turns a YAML description of a transformer language model into one small, startup-fast native executable per model, for devices whose memory is smaller than the model."
"$dir/build/synthetic-1b-fatrelu" bench --model "$dir/synthetic-1b-fatrelu.afm" --modes naive,flash --dram-budget "${BUDGET:-50%}" \
  -n "${TOKENS:-64}" -p "$prompt" "$@"
