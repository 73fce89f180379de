#!/usr/bin/env bash
# LLM in a flash on a 2 GB model: naive (whole FFN read from flash each token) vs flash (predicted neurons, cached,
# read sparsely) at a 50% DRAM budget, side by side in one `bench` run, with an I/O probe of the disk.
# The model is SYNTHETIC (bench/synthetic.sh): a 1.1B-parameter llama shape whose FFN neurons pass FATReLU about 10%
# of the time, predictably, like a ReLU-fine-tuned model; it measures speed, not quality. The benchmark prompt is a
# sentence of English, so that consecutive tokens use different neurons. bench reports the prompt's forward passes
# (time to first token) apart from decoding; 64 generated tokens (TOKENS) give decode 63 passes.
# Takes ~10 minutes the first time (build, weights, calibration), a few minutes after (naive mode reads the whole FFN
# for each of the ~100 forward passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
read -r bin model < <(bench/synthetic.sh modelspecs/synthetic-1b-fatrelu.yaml | tail -n 1)
prompt="AotFlash turns a YAML description of a transformer language model into one small, startup-fast native executable per model, for devices whose memory is smaller than the model."
"$bin" bench --model "$model" --modes naive,flash --dram-budget "${BUDGET:-50%}" -n "${TOKENS:-64}" -p "$prompt" "$@"
