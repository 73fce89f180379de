#!/usr/bin/env bash
# A model of a real shape with SYNTHETIC weights, ready for flash mode: builds the spec's bare binary, generates the
# weights straight into the model file ('convert --synthetic': FFN neurons sparse and predictable, see
# runtime/Convert/SyntheticWeights.cs), then calibrates the predictors on English text (README + DESIGN: a random
# model's own samples repeat themselves). Steps already done are skipped; each prints how long it took.
# Last line of stdout: "BINARY MODEL_FILE". MODEL_FILE.prepared records what preparing it took (JSON).
#   bench/synthetic.sh SPEC [--dtype f32|f16|q8|q4] [--resident f32|f16|q8|q4] [--seed N] [--calibrate-tokens N] [--no-calibrate]
# --dtype derives a spec of the same shape with other weights (NAME-q8.yaml under artifacts/bench/specs), --resident
# one whose resident matrices (embeddings, attention) have another type than its FFN (NAME-resident-q4.yaml);
# --no-calibrate leaves out the predictors (dense-only models, e.g. silu).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${SHARED:-../shared}
[[ $# -ge 1 && -f $1 ]] || { echo "usage: bench/synthetic.sh SPEC [--dtype f32|f16|q8|q4] [--resident f32|f16|q8|q4] [--seed N] [--calibrate-tokens N] [--no-calibrate]" >&2; exit 2; }
spec=$1; shift
dtype="" resident="" seed=1 tokens=1024 do_calibrate=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dtype) dtype=$2; shift 2 ;;
    --resident) resident=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --calibrate-tokens) tokens=$2; shift 2 ;;
    --no-calibrate) do_calibrate=false; shift ;;
    *) echo "bench/synthetic.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
name=$(sed -n 's/^name: *//p' "$spec")
# derive SUFFIX SED CHECK: the spec renamed NAME-SUFFIX with its weights line rewritten by SED (CHECK then holds), under
# artifacts/bench/specs; it becomes the spec this script prepares.
derive() {
  mkdir -p artifacts/bench/specs
  local derived=artifacts/bench/specs/$name-$1.yaml
  sed -E -e "s/^name: .*/name: $name-$1/" -e "$2" "$spec" > "$derived"
  grep -q "$3" "$derived" || { echo "bench/synthetic.sh: $spec has no 'weights: { dtype: ... }' line to change" >&2; exit 2; }
  spec=$derived name=$name-$1
}
if [[ -n $dtype ]] && ! grep -q "dtype: $dtype }" "$spec"; then derive "$dtype" "s/dtype: [a-z0-9]+ \}/dtype: $dtype }/" "dtype: $dtype }"; fi
if [[ -n $resident ]]; then derive "resident-$resident" "s/dtype: ([a-z0-9]+) \}/dtype: \1, resident: $resident }/" "resident: $resident }"; fi
dir=artifacts/$name
bin=$dir/build/$name model=$dir/$name.afm
if grep -q "kind: gpt2" "$spec"; then tokenizer=$shared/models/opt-tiny-hf; else tokenizer=$shared/models/llama2-tokenizer/tokenizer.bin; fi

# A binary older than any source, or built for another --cpu than $AOTFLASH_CPU asks (see publish.sh), is built again. Its model file is made again only if the new binary refuses it
# (another spec hash or format): a 7B shape takes half an hour to generate and calibrate.
if [[ ! -x $bin ]] || [[ "$(cat "$dir/build/cpu" 2>/dev/null)" != "${AOTFLASH_CPU:-default}" ]] || [[ -n $(find runtime generator host "$spec" \( -name bin -o -name obj \) -prune -o -newer "$bin" -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.yaml' \) -print | head -n 1) ]]; then
  ./publish.sh "$spec" >/dev/null
fi
if [[ -f $model.prepared ]] && ! "$bin" info --model "$model" 2>/dev/null | grep -q "(matches this binary)"; then
  echo "bench/synthetic.sh: $name: $model does not match the rebuilt binary; making it again" >&2
  rm -f "$model.prepared"
fi
if [[ ! -f $model.prepared ]]; then
  commit=$(git rev-parse --short HEAD)
  t0=$SECONDS
  "$bin" convert --synthetic "$seed" --tokenizer "$tokenizer" -o "$model" --force
  generate=$((SECONDS - t0))
  echo "bench/synthetic.sh: $name: synthetic weights written in $generate s" >&2
  calibrated=null
  if $do_calibrate; then
    mkdir -p artifacts/bench
    cat README.md "$shared/DESIGN.md" > artifacts/bench/calibration.txt
    t0=$SECONDS
    "$bin" calibrate --model "$model" --text artifacts/bench/calibration.txt --tokens "$tokens" >&2
    calibrated=$((SECONDS - t0))
    echo "bench/synthetic.sh: $name: calibrated on $tokens tokens in $calibrated s" >&2
  else
    tokens=0
  fi
  printf '{"seed":%s,"generate_seconds":%s,"calibrate_seconds":%s,"calibrate_tokens":%s,"commit":"%s"}\n' "$seed" "$generate" "$calibrated" "$tokens" "$commit" > "$model.prepared"
fi
echo "$bin $model"
