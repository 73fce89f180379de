#!/usr/bin/env python3
"""Streams a story from a model library built by `./publish.sh modelspecs/stories260K-relu.yaml --lib`, with ctypes
only, like `stories260K-relu run -p PROMPT -n N --temp T`: the prompt, then each token's text as it is generated.

    python3 examples/python/stream.py artifacts/stories260K-relu/libstories260K-relu.so "Once upon a time" 100 0

Arguments: LIBRARY [PROMPT [MAX_NEW_TOKENS [TEMPERATURE]]], by default "Once upon a time", 100 and 0 (greedy).
The model is the one packed into the library; set AOTFLASH_MODEL to use a model file (.afm) instead.
"""
import ctypes as C
import os
import sys

# aotflash.h, transcribed.
OK, ERR_BUFFER_TOO_SMALL = 0, 3
MODES = ["auto", "dense", "naive", "flash"]

PROGRESS_FN = C.CFUNCTYPE(C.c_int32, C.c_float, C.c_void_p)
TOKEN_FN = C.CFUNCTYPE(C.c_int32, C.c_int32, C.POINTER(C.c_char), C.c_size_t, C.c_void_p)


class Params(C.Structure):
    _fields_ = [("size", C.c_uint32), ("mode", C.c_int32), ("threads", C.c_int32), ("window", C.c_int32),
                ("io_threads", C.c_int32), ("top_k", C.c_int32), ("temperature", C.c_float), ("top_p", C.c_float),
                ("min_p", C.c_float), ("measure_recall", C.c_int32), ("seed", C.c_uint64),
                ("dram_budget", C.c_char_p), ("progress", PROGRESS_FN), ("progress_user_data", C.c_void_p)]


class SessionStats(C.Structure):
    _fields_ = [("size", C.c_uint32), ("mode", C.c_int32), ("threads", C.c_int32), ("positions", C.c_int32),
                ("prompt_tokens", C.c_int32), ("generated_tokens", C.c_int32), ("stop_reason", C.c_int32),
                ("o_direct", C.c_int32)] + \
               [(name, C.c_double) for name in (
                   "load_ms", "ttft_ms", "ms_per_token", "forward_ms_per_token", "io_ms_per_token", "mem_ms_per_token",
                   "compute_ms_per_token", "bytes_read_per_token", "ffn_density", "predictor_recall",
                   "cache_hit_rate")] + \
               [("peak_dram_bytes", C.c_int64), ("dram_budget_bytes", C.c_int64)]


def load(path):
    lib = C.CDLL(path)
    lib.aotflash_last_error.restype = C.c_char_p
    lib.aotflash_default_params.restype = Params
    lib.aotflash_model_open.argtypes = [C.c_char_p, C.POINTER(Params), C.POINTER(C.c_void_p)]
    lib.aotflash_model_close.argtypes = [C.c_void_p]
    lib.aotflash_tokenize.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.c_int32, C.POINTER(C.c_int32), C.c_size_t,
                                      C.POINTER(C.c_size_t)]
    lib.aotflash_session_new.argtypes = [C.c_void_p, C.POINTER(Params), C.POINTER(C.c_void_p)]
    lib.aotflash_session_free.argtypes = [C.c_void_p]
    lib.aotflash_generate.argtypes = [C.c_void_p, C.POINTER(C.c_int32), C.c_size_t, C.c_int32, TOKEN_FN, C.c_void_p,
                                      C.POINTER(C.c_int32)]
    lib.aotflash_stats.argtypes = [C.c_void_p, C.POINTER(SessionStats)]
    return lib


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: stream.py LIBRARY [PROMPT [MAX_NEW_TOKENS [TEMPERATURE]]]")
    lib = load(argv[1])
    prompt = (argv[2] if len(argv) > 2 else "Once upon a time").encode()
    max_new_tokens = int(argv[3]) if len(argv) > 3 else 100

    def check(status, what):
        if status != OK:
            sys.exit(f"error: {what}: {lib.aotflash_last_error().decode(errors='replace')}")

    params = lib.aotflash_default_params()
    params.temperature = float(argv[4]) if len(argv) > 4 else 0.0
    model = C.c_void_p()
    model_path = os.environ.get("AOTFLASH_MODEL")
    check(lib.aotflash_model_open(model_path.encode() if model_path else None, C.byref(params), C.byref(model)),
          "opening the model")

    # Tokenize with BOS: ask for the size first, then fill a buffer of that size.
    count = C.c_size_t()
    status = lib.aotflash_tokenize(model, prompt, len(prompt), 1, None, 0, C.byref(count))
    if status != ERR_BUFFER_TOO_SMALL:
        check(status, "tokenizing")
    ids = (C.c_int32 * count.value)()
    check(lib.aotflash_tokenize(model, prompt, len(prompt), 1, ids, len(ids), C.byref(count)), "tokenizing")

    session = C.c_void_p()
    check(lib.aotflash_session_new(model, None, C.byref(session)), "creating a session")

    out = sys.stdout.buffer
    out.write(prompt)

    @TOKEN_FN
    def print_piece(token, piece, piece_len, user_data):
        out.write(C.string_at(piece, piece_len))
        out.flush()
        return 0

    reason = C.c_int32()
    check(lib.aotflash_generate(session, ids, len(ids), max_new_tokens, print_piece, None, C.byref(reason)), "generating")
    out.write(b"\n")
    out.flush()

    stats = SessionStats(size=C.sizeof(SessionStats))
    check(lib.aotflash_stats(session, C.byref(stats)), "reading the statistics")
    print(f"[{stats.generated_tokens} tokens, {MODES[stats.mode]} mode: load {stats.load_ms:.1f} ms, "
          f"first token {stats.ttft_ms:.1f} ms, {stats.ms_per_token:.2f} ms/token, peak DRAM {stats.peak_dram_bytes} bytes]",
          file=sys.stderr)
    lib.aotflash_session_free(session)
    lib.aotflash_model_close(model)


if __name__ == "__main__":
    main(sys.argv)
