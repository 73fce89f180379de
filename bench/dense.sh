#!/usr/bin/env bash
# Dense-mode speed and size of published binaries: executable size, start-to-first-token, decode tokens/s with 1 and
# 2 threads. Models: stories260K (real weights from ../shared) and stories110M (SYNTHETIC random weights of the real
# shape, made by bench/RandomCheckpoint.cs; its text is noise). With LLAMA2C=/path/to/llama2.c's `run` built by
# `gcc -Ofast -march=native run.c -lm -o run` (and `-fopenmp` as run-omp beside it) the same checkpoints run there too.
# With QUANT=1, stories110M also runs with q8 and q4 weights (specs derived from modelspecs/stories110M.yaml into
# artifacts/bench/): a model far larger than the caches, where decoding is bound by the bytes of weights per token.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${SHARED:-../shared}
out=artifacts/bench
mkdir -p "$out"
n=128
prompt="Once upon a time"

[[ -f $out/stories110M-random.bin ]] ||
  dotnet run bench/RandomCheckpoint.cs -- "$out/stories110M-random.bin" 768 2048 12 12 12 32000 1024
declare -A weights=([stories260K]=$shared/models/stories260K/stories260K.bin [stories110M]=$out/stories110M-random.bin)
declare -A tokenizer=([stories260K]=$shared/models/stories260K/tok512.bin [stories110M]=$shared/models/llama2-tokenizer/tokenizer.bin)
declare -A spec=([stories260K]=modelspecs/stories260K.yaml [stories110M]=modelspecs/stories110M.yaml)
models=(stories260K stories110M)
if [[ -n "${QUANT:-}" ]]; then
  for q in q8 q4; do
    sed -e "s/^name: stories110M$/name: stories110M-$q/" -e "s/dtype: f32/dtype: $q/" modelspecs/stories110M.yaml > "$out/stories110M-$q.yaml"
    weights[stories110M-$q]=${weights[stories110M]}; tokenizer[stories110M-$q]=${tokenizer[stories110M]}; spec[stories110M-$q]=$out/stories110M-$q.yaml
    models+=(stories110M-$q)
  done
fi

ms() { date +%s%N | awk '{printf "%.1f", $1 / 1e6}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB"
printf '%-12s %-9s %12s %12s %14s %12s %12s\n' model engine exe_bytes packed_bytes start_to_tok1_ms tok/s_t1 tok/s_t2
for model in "${models[@]}"; do
  exe=$(./publish.sh "${spec[$model]}" --weights "${weights[$model]}" --tokenizer "${tokenizer[$model]}" 2>/dev/null | tail -n 1)
  bare=$(dirname "$exe")/build/$model
  "$exe" run -p "$prompt" -n 1 --temp 0 >/dev/null 2>&1   # warm the page cache: this measures start-up, not the disk
  start=$(for i in 1 2 3 4 5; do t0=$(ms); "$exe" run -p "$prompt" -n 1 --temp 0 -t 1 >/dev/null 2>&1; t1=$(ms); echo "$t1 - $t0" | bc; done | median)
  tps() { "$exe" run -p "$prompt" -n $n --temp 0 -t "$1" --json | sed -E 's/.*"ms_per_token":([0-9.]+).*/\1/' | awk '{printf "%.1f", 1000 / $1}'; }
  printf '%-12s %-9s %12s %12s %14s %12s %12s\n' $model aotflash "$(stat -c %s "$bare")" "$(stat -c %s "$exe")" "$start" "$(tps 1)" "$(tps 2)"
  if [[ -n "${LLAMA2C:-}" && $model != *-q? ]]; then
    l1=$("$LLAMA2C" "${weights[$model]}" -z "${tokenizer[$model]}" -t 0 -n $((n + 5)) -i "$prompt" 2>&1 | grep -o 'achieved tok/s: [0-9.]*' | awk '{print $3}')
    l2=$(OMP_NUM_THREADS=2 "$(dirname "$LLAMA2C")/run-omp" "${weights[$model]}" -z "${tokenizer[$model]}" -t 0 -n $((n + 5)) -i "$prompt" 2>&1 | grep -o 'achieved tok/s: [0-9.]*' | awk '{print $3}')
    printf '%-12s %-9s %12s %12s %14s %12.1f %12.1f\n' $model llama2.c - - - "$l1" "$l2"
  fi
done
