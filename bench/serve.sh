#!/usr/bin/env bash
# serve over HTTP on the 110M shape (SYNTHETIC random weights of stories110M's shape, as bench/dense.sh makes them; the
# text is noise, the timings are real): executable size and every command's resident memory with and without the
# server, process start to the first streamed token, tokens/s with 1, 2 and 4 concurrent streams (serve --parallel N,
# default threads), and what --parallel 1 --queue 1 answers to 3 requests at once. Needs node (bench/serve.mjs uses
# only its built-in fetch). Usage: bench/serve.sh [SPEC] (default modelspecs/stories110M.yaml, 110M weights).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=${SHARED:-../shared}
out=artifacts/bench
mkdir -p "$out"
spec=${1:-modelspecs/stories110M.yaml}
name=$(basename "$spec" .yaml)
if [[ $# -ge 1 ]]; then weights=(); else
  [[ -f $out/stories110M-random.bin ]] ||
    dotnet run bench/RandomCheckpoint.cs -- "$out/stories110M-random.bin" 768 2048 12 12 12 32000 1024
  weights=(--weights "$out/stories110M-random.bin" --tokenizer "$shared/models/llama2-tokenizer/tokenizer.bin")
fi
plain=$(./publish.sh "$spec" "${weights[@]}" --output "$out/serve-plain/$name" 2>/dev/null | tail -n 1)
server=$(./publish.sh "$spec" "${weights[@]}" --output "$out/serve/$name" --server 2>/dev/null | tail -n 1)

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; commit $(git rev-parse --short HEAD)"
rss() { /usr/bin/time -f %M "$1" run -p "Once upon a time" -n 8 --temp 0 2>&1 >/dev/null | tail -n 1; }
printf '%-8s %14s %16s\n' build exe_bytes run_peak_rss_kib
printf '%-8s %14s %16s\n' plain "$(stat -c %s "$(dirname "$plain")/build/$name")" "$(rss "$plain")"
printf '%-8s %14s %16s\n' server "$(stat -c %s "$(dirname "$server")/build/$name")" "$(rss "$server")"
node bench/serve.mjs "$server"
