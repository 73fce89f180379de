#!/usr/bin/env bash
# Builds the Native AOT executable of one model spec and packs its model file into it, so one file ships; with --lib
# also the C shared library of the same model (with the model packed in) and its header.
# Prints the produced file's path as the last line of stdout (build logs go to stderr).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./publish.sh modelspecs/<name>.yaml [--weights CKPT] [--tokenizer TOK] [--output DIR] [--rid RID] [--cpu ISA] [--keep-symbols]
                   [--lib] [--server]

  --weights CKPT     llama2.c checkpoint, a Hugging Face folder (config.json + safetensors; make its spec with
                     '<any published binary> convert --hf DIR --emit-spec SPEC.yaml'), or a GGUF file (*.gguf, llama
                     architecture, its vocabulary included; spec from 'convert --gguf FILE --emit-spec SPEC.yaml')
                     (default: modelspecs/<name>/model.bin when it exists)
  --tokenizer TOK    llama2.c tokenizer.bin (default: modelspecs/<name>/tokenizer.bin); for a gpt2-tokenizer model from
                     a Hugging Face folder, the folder's tokenizer.json or vocab.json + merges.txt are used
  --output DIR       where to put the result (default: artifacts/<name>, or artifacts/<name>-<rid> for other RIDs)
  --rid RID          linux-x64 (default) or linux-arm64 (cross-compiled with clang + lld; the model is converted by
                     running the new binary under qemu-aarch64, so qemu-user must be installed)
  --cpu ISA          instruction set the executable may assume (default: $AOTFLASH_CPU when set, else for linux-x64
                     x86-64-v3, i.e. AVX2+FMA; e.g. x86-64-v2, x86-64-v4 for AVX-512, or native for this machine);
                     recorded in DIR/build/cpu
  --keep-symbols     do not strip native symbols from the executable
  --no-calibrate     do not train flash-mode predictors (by default ReLU-family models are calibrated, so the
                     executable runs in flash mode out of the box)
  --calibrate-tokens N   calibration tokens (default 4096)
  --lib              also build the C shared library DIR/lib<name>.so (the C API of DIR/aotflash.h, the model packed
                     in) and print its path last
  --server           compile the serve command into the executable: an OpenAI-compatible HTTP server on Kestrel
                     (the executable grows by ~5.5 MB, and every command's resident memory by ~5 MB)

Produces DIR/<name> (the executable with the model packed in) and DIR/<name>.afm (the model file).
Without weights it produces the bare executable, which then needs --model FILE at run time (and a bare library,
whose aotflash_model_open then needs the path of a model file).
USAGE
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
spec=$1; shift
weights="" tokenizer="" output="" rid="linux-x64" strip=true cpu=${AOTFLASH_CPU:-} calibrate=true calibrate_tokens=4096 lib=false server=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --weights) weights=${2:?--weights needs a file}; shift 2 ;;
    --tokenizer) tokenizer=${2:?--tokenizer needs a file}; shift 2 ;;
    --output) output=${2:?--output needs a directory}; shift 2 ;;
    --rid) rid=${2:?--rid needs a runtime identifier}; shift 2 ;;
    --keep-symbols) strip=false; shift ;;
    --cpu) cpu=${2:?--cpu needs an instruction set}; shift 2 ;;
    --no-calibrate) calibrate=false; shift ;;
    --calibrate-tokens) calibrate_tokens=${2:?--calibrate-tokens needs a number}; shift 2 ;;
    --lib) lib=true; shift ;;
    --server) server=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "publish.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ -f "$spec" ]] || { echo "publish.sh: error: spec '$spec' not found" >&2; exit 2; }
cross=()
case "$rid" in
  linux-x64) ;;
  linux-arm64)
    cross=(-p:LinkerFlavor=lld -p:ObjCopyName=aarch64-linux-gnu-objcopy)
    [[ "$(uname -m)" == aarch64 ]] && cross=() ;;
  *) echo "publish.sh: error: --rid $rid is not supported (linux-x64, linux-arm64)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
spec=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
name=$(basename "$spec"); name=${name%.yaml}; name=${name%.yml}
specdir=$(dirname "$spec")/$name
[[ -n "$weights" || ! -f "$specdir/model.bin" ]] || weights=$specdir/model.bin
[[ -n "$tokenizer" || ! -f "$specdir/tokenizer.bin" ]] || tokenizer=$specdir/tokenizer.bin
[[ -z "$weights" || -d "$weights" || "$weights" == *.gguf || -n "$tokenizer" ]] || { echo "publish.sh: error: --weights needs --tokenizer too" >&2; exit 2; }
if [[ "$rid" == linux-x64 ]]; then output=${output:-$root/artifacts/$name}; else output=${output:-$root/artifacts/$name-$rid}; fi
mkdir -p "$output"
output=$(cd "$output" && pwd)
build=$output/build

build_host() { # OUTPUT_DIR [MSBUILD_PROPERTY...]
  local dir=$1; shift
  dotnet publish "$root/host/AotFlash.Host.csproj" -c Release -r "$rid" --nologo -v quiet \
    -p:ModelSpec="$spec" -p:ModelName="$name" -p:StripSymbols="$strip" ${cpu:+-p:IlcInstructionSet="$cpu"} \
    "${cross[@]}" "$@" -o "$dir" >&2
}
echo "publish.sh: building $name for $rid (Native AOT$($server && echo ", with serve"))..." >&2
# The native link is up to date when its object file is, whether or not the last link stripped it: remove its output
# so that --keep-symbols (or its absence) always applies. An unstripped build writes no .dbg, and dotnet publish would
# copy one an earlier stripped build left, which would not match.
rm -f "$root"/host/bin/Release/*/"$rid"/native/"$name"{,.dbg} "$build/$name.dbg"
build_host "$build" -p:Server=$server
echo "${cpu:-default}" > "$build/cpu"
# The executable converts, calibrates and packs the model for the library too.
if $lib; then
  echo "publish.sh: building lib$name.so for $rid (Native AOT, shared library)..." >&2
  build_host "$output/build-lib" -p:NativeLib=Shared
  cp "$root/runtime/Interop/aotflash.h" "$output/aotflash.h"
fi

exe=$build/$name
run=("$exe")
if [[ ${#cross[@]} -gt 0 ]]; then
  command -v qemu-aarch64 >/dev/null ||
    { echo "publish.sh: error: converting for $rid on $(uname -m) needs qemu-aarch64 (apt-get install qemu-user)" >&2; exit 1; }
  run=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$exe")
fi
if [[ -n "$weights" ]]; then
  if [[ -d "$weights" ]]; then source_args=(--hf "$weights" ${tokenizer:+--tokenizer "$tokenizer"})
  elif [[ "$weights" == *.gguf ]]; then source_args=(--gguf "$weights" ${tokenizer:+--tokenizer "$tokenizer"})
  else source_args=(--weights "$weights" --tokenizer "$tokenizer"); fi
  "${run[@]}" convert "${source_args[@]}" -o "$output/$name.afm" --force >&2
  if $calibrate && "${run[@]}" info | grep -Eq '^math .*, (relu|fatrelu\([^)]*\)), '; then
    "${run[@]}" calibrate --model "$output/$name.afm" --tokens "$calibrate_tokens" >&2
  fi
  "${run[@]}" pack "$output/$name.afm" -o "$output/$name" --force >&2
  if $lib; then "${run[@]}" pack "$output/$name.afm" -o "$output/lib$name.so" --binary "$output/build-lib/$name.so" --force >&2; fi
else
  echo "publish.sh: no weights given: $output/$name needs --model FILE at run time" >&2
  cp "$exe" "$output/$name"
  if $lib; then cp "$output/build-lib/$name.so" "$output/lib$name.so"; fi
fi
if $lib; then echo "$output/lib$name.so"; else echo "$output/$name"; fi
