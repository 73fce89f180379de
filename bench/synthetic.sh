#!/usr/bin/env bash
# A model of a real shape with SYNTHETIC weights, ready for flash mode: builds the spec's bare binary, generates the
# weights straight into the model file ('convert --synthetic': FFN neurons sparse and predictable, see
# runtime/Convert/SyntheticWeights.cs), then calibrates the predictors on English text (README + DESIGN: a random
# model's own samples repeat themselves). Steps already done are skipped; each prints how long it took.
# Last line of stdout: "BINARY MODEL_FILE".
#   bench/synthetic.sh SPEC [--dtype f16|q8|q4] [--seed N] [--calibrate-tokens N]
# --dtype derives a spec of the same shape with other weights (NAME-q8.yaml under artifacts/bench/specs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${SHARED:-../shared}
[[ $# -ge 1 && -f $1 ]] || { echo "usage: bench/synthetic.sh SPEC [--dtype f16|q8|q4] [--seed N] [--calibrate-tokens N]" >&2; exit 2; }
spec=$1; shift
dtype="" seed=1 tokens=1024
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dtype) dtype=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --calibrate-tokens) tokens=$2; shift 2 ;;
    *) echo "bench/synthetic.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
name=$(sed -n 's/^name: *//p' "$spec")
if [[ -n $dtype ]] && ! grep -q "dtype: $dtype }" "$spec"; then
  mkdir -p artifacts/bench/specs
  derived=artifacts/bench/specs/$name-$dtype.yaml
  sed -E -e "s/^name: .*/name: $name-$dtype/" -e "s/dtype: [a-z0-9]+ \}/dtype: $dtype }/" "$spec" > "$derived"
  grep -q "dtype: $dtype }" "$derived" || { echo "bench/synthetic.sh: $spec has no 'weights: { dtype: ... }' line to change" >&2; exit 2; }
  spec=$derived name=$name-$dtype
fi
dir=artifacts/$name
bin=$dir/build/$name model=$dir/$name.afm
if grep -q "kind: gpt2" "$spec"; then tokenizer=$shared/models/opt-tiny-hf; else tokenizer=$shared/models/llama2-tokenizer/tokenizer.bin; fi

[[ -x $bin ]] || ./publish.sh "$spec" >/dev/null
if [[ ! -f $model ]]; then
  t0=$SECONDS
  "$bin" convert --synthetic "$seed" --tokenizer "$tokenizer" -o "$model"
  echo "bench/synthetic.sh: $name: synthetic weights written in $((SECONDS - t0)) s" >&2
fi
if [[ ! -f $model.calibrated ]]; then
  mkdir -p artifacts/bench
  cat README.md "$shared/DESIGN.md" > artifacts/bench/calibration.txt
  t0=$SECONDS
  "$bin" calibrate --model "$model" --text artifacts/bench/calibration.txt --tokens "$tokens" >&2
  echo "bench/synthetic.sh: $name: calibrated on $tokens tokens in $((SECONDS - t0)) s" | tee "$model.calibrated" >&2
fi
echo "$bin $model"
