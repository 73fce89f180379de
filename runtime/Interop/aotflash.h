/*
 * aotflash.h: the C API of an AotFlash model library (lib<name>.so, built by `./publish.sh <spec> --lib`).
 *
 * One library runs one model: the spec it was compiled from (see aotflash_spec_hash). Its model file is either
 * packed into the library (pass NULL as the path to aotflash_model_open) or a separate .afm file.
 *
 * Conventions:
 * - Every function that can fail returns an aotflash_status; AOTFLASH_OK is 0. On failure,
 *   aotflash_last_error() describes what went wrong in one line (per thread). A failed call leaves its outputs
 *   alone, except a size output, which receives the size needed (with AOTFLASH_ERR_BUFFER_TOO_SMALL, and wherever it
 *   is known).
 * - Handles are opaque. A handle that is NULL, freed or closed, of the other kind, or that never came from this
 *   library gives AOTFLASH_ERR_INVALID_HANDLE (it is looked up in a table, never dereferenced). Other required
 *   pointers that are NULL give AOTFLASH_ERR_INVALID_ARGUMENT. Nothing here aborts the process on misuse.
 * - Buffers: the caller passes a buffer and its capacity; when it is too small (or NULL with capacity 0) the call
 *   returns AOTFLASH_ERR_BUFFER_TOO_SMALL, writes the size it needs to the size output and changes nothing else.
 * - Text is UTF-8, passed as pointer + length (it may contain NUL bytes). Text coming back may end in the middle
 *   of a multi-byte character when a token holds part of one; concatenating the pieces gives the full text.
 * - Threads: a model may be used from any number of threads at once (tokenize, detokenize, info, new sessions).
 *   A session is used by one thread at a time; sessions on different threads run in parallel. A call on a session
 *   that another thread is using (or from inside that session's own token callback) returns AOTFLASH_ERR_BUSY.
 * - Structs carry their own size in their first field so that they can grow: set it to sizeof(the struct) (the
 *   aotflash_default_params() result already holds it).
 * - Only 64-bit Linux (x64, arm64) is supported.
 */
#ifndef AOTFLASH_H
#define AOTFLASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library version that this header describes; compare it with aotflash_version(). */
#define AOTFLASH_VERSION "0.1.0"

/* Status codes. */
typedef int32_t aotflash_status;
enum {
    AOTFLASH_OK = 0,
    AOTFLASH_ERR_INVALID_ARGUMENT = 1,   /* a required pointer is NULL, or a value is out of its range */
    AOTFLASH_ERR_INVALID_HANDLE = 2,     /* a handle that is freed, closed, or not from this library */
    AOTFLASH_ERR_BUFFER_TOO_SMALL = 3,   /* the required size was written to the size output */
    AOTFLASH_ERR_TOKEN_OUT_OF_RANGE = 4, /* a token id outside [0, vocab) */
    AOTFLASH_ERR_INVALID_UTF8 = 5,       /* text that is not valid UTF-8 */
    AOTFLASH_ERR_CONTEXT_FULL = 6,       /* more positions than the model's context */
    AOTFLASH_ERR_BUSY = 7,               /* the session is in use on another thread or inside its callback */
    AOTFLASH_ERR_BAD_INPUT = 8,          /* the model file or a setting was rejected (missing, corrupt, wrong model,
                                            DRAM budget too small, ...) */
    AOTFLASH_ERR_CANCELLED = 9,          /* the progress callback cancelled aotflash_model_open */
    AOTFLASH_ERR_RUNTIME = 10            /* an I/O failure, out of memory, or an internal error */
};

/* How the FFN weights are held (see the README): chosen at aotflash_model_open. */
typedef int32_t aotflash_mode;
enum {
    AOTFLASH_MODE_AUTO = 0,  /* flash when the model file has predictors, dense otherwise */
    AOTFLASH_MODE_DENSE = 1, /* every weight mapped in DRAM */
    AOTFLASH_MODE_NAIVE = 2, /* each layer's whole FFN read from flash every token (the paper's baseline) */
    AOTFLASH_MODE_FLASH = 3  /* predicted neurons, cached, read sparsely from flash */
};

/* Why aotflash_generate stopped. */
typedef int32_t aotflash_stop_reason;
enum {
    AOTFLASH_STOP_NONE = -1,    /* no generation yet (in aotflash_session_stats) */
    AOTFLASH_STOP_TOKEN = 0,    /* the model produced a stop token of the spec (not passed to the callback) */
    AOTFLASH_STOP_LENGTH = 1,   /* max_new_tokens were generated */
    AOTFLASH_STOP_CONTEXT = 2,  /* the context is full */
    AOTFLASH_STOP_CALLBACK = 3  /* the token callback returned non-zero */
};

/* Opaque handles. */
typedef struct aotflash_model aotflash_model;
typedef struct aotflash_session aotflash_session;

/* Called during aotflash_model_open with progress from 0 to 1, on the opening thread; return non-zero to cancel. */
typedef int32_t (*aotflash_progress_fn)(float progress, void *user_data);

/* Called by aotflash_generate for each generated token, on the generating thread: its id and its text
 * (piece_len bytes, followed by a NUL that is not counted; valid only during the call). Return 0 to go on,
 * non-zero to stop. It may call the API, but not on the session that is generating (AOTFLASH_ERR_BUSY). */
typedef int32_t (*aotflash_token_fn)(int32_t token, const char *piece, size_t piece_len, void *user_data);

/* Settings for aotflash_model_open (mode, dram_budget, progress) and aotflash_session_new (the rest).
 * Start from aotflash_default_params() and change fields. */
typedef struct aotflash_params {
    uint32_t size;            /* sizeof(aotflash_params); a smaller one (older header) leaves later fields default */
    aotflash_mode mode;       /* default AOTFLASH_MODE_AUTO */
    int32_t threads;          /* compute threads per session; 0 (default): the physical cores */
    int32_t window;           /* flash mode: tokens a neuron stays cached; 0 (default): the spec's */
    int32_t io_threads;       /* flash and naive modes: parallel flash reads per session; 0 (default): the spec's */
    int32_t top_k;            /* keep the K most likely tokens, 0 = off (default 40) */
    float temperature;        /* 0 = greedy (default 0.8) */
    float top_p;              /* nucleus mass in (0, 1], 1 = off (default 0.95) */
    float min_p;              /* in [0, 1), 0 = off (default 0.05) */
    int32_t measure_recall;   /* flash mode: non-zero also computes the true active neurons, for predictor_recall */
    uint64_t seed;            /* sampling seed; 0 (default): from the clock */
    const char *dram_budget;  /* NUL-terminated, e.g. "50%" (of the model file) or "512MiB"; NULL (default): the
                                 spec's in flash mode, none otherwise. Each session's budget covers the weights too. */
    aotflash_progress_fn progress; /* may be NULL (default) */
    void *progress_user_data;
} aotflash_params;

/* What a model is. Strings are NUL-terminated and stay valid while the library is loaded. */
typedef struct aotflash_model_desc {
    uint32_t size;            /* set to sizeof(aotflash_model_desc) before the call */
    int32_t vocab;            /* token ids are in [0, vocab) */
    int32_t context;          /* most positions a session holds */
    int32_t bos;              /* beginning-of-sequence token id */
    int32_t eos;              /* end-of-sequence token id */
    aotflash_mode mode;       /* the mode the model was opened in (never AUTO) */
    int32_t dim;
    int32_t layers;
    const char *name;         /* the spec's name, e.g. "stories260K-relu" */
    const char *spec_hash;    /* the same as aotflash_spec_hash() */
    const char *family;       /* "llama" */
} aotflash_model_desc;

/* One message of a conversation (aotflash_chat_tokenize): role "system", "user" or "assistant", and the content.
 * Unlike other text in this API, both are NUL-terminated UTF-8: a message ends at its first NUL. */
typedef struct aotflash_chat_message {
    const char *role;
    const char *content;
} aotflash_chat_message;

/* Statistics of a session's last aotflash_generate (as the CLI's `run --json` stats), and its state. */
typedef struct aotflash_session_stats {
    uint32_t size;                /* set to sizeof(aotflash_session_stats) before the call */
    aotflash_mode mode;
    int32_t threads;
    int32_t positions;            /* positions held in the KV cache (the next eval position may be up to this) */
    int32_t prompt_tokens;        /* of the last generation; 0 before the first */
    int32_t generated_tokens;
    aotflash_stop_reason stop_reason; /* AOTFLASH_STOP_NONE before the first generation */
    int32_t o_direct;             /* 1: flash reads bypass the page cache, 0: buffered, -1: no flash reads */
    double load_ms;               /* aotflash_model_open's time */
    double ttft_ms;               /* generation start to first token, prompt included */
    double ms_per_token;          /* per generated token after the first */
    double forward_ms_per_token;  /* per forward pass (prompt and generated tokens), and its parts: */
    double io_ms_per_token;
    double mem_ms_per_token;
    double compute_ms_per_token;
    double bytes_read_per_token;
    double ffn_density;           /* fraction of FFN neurons computed */
    double predictor_recall;      /* with measure_recall, else -1 */
    double cache_hit_rate;        /* flash mode, else -1 */
    int64_t peak_dram_bytes;      /* this session's peak (the shared weights included) */
    int64_t dram_budget_bytes;    /* -1: no budget */
} aotflash_session_stats;

/* The library's version, e.g. "0.1.0" (static string). Thread-safe; never fails. */
const char *aotflash_version(void);

/* The hash of the spec compiled into this library (static string); model files made for it carry the same hash.
 * Thread-safe; never fails. */
const char *aotflash_spec_hash(void);

/* A one-line description of why the calling thread's last call that returns an aotflash_status failed ("" when it
 * returned AOTFLASH_OK). The string belongs to the library and stays valid until the thread's next such call. */
const char *aotflash_last_error(void);

/* A short static description of a status code ("unknown status" for others). Thread-safe; never fails. */
const char *aotflash_status_string(aotflash_status status);

/* The default settings, with size = sizeof(aotflash_params). Thread-safe; never fails. */
aotflash_params aotflash_default_params(void);

/* Opens the model: path is a model file (.afm) for this spec, or NULL for the model packed into the library.
 * params may be NULL (the defaults); dram_budget is copied. On success *out_model receives a handle, which the
 * caller closes with aotflash_model_close. Errors: INVALID_ARGUMENT (out_model NULL, bad params), BAD_INPUT (no
 * model, wrong or corrupt file, budget too small), CANCELLED, RUNTIME. Thread-safe. */
aotflash_status aotflash_model_open(const char *path, const aotflash_params *params, aotflash_model **out_model);

/* Closes the model handle; later calls with it give INVALID_HANDLE. Sessions made from it remain usable and keep
 * the weights mapped until the last of them is freed. Thread-safe. */
aotflash_status aotflash_model_close(aotflash_model *model);

/* Describes the model into *out_desc (whose size field the caller sets). Thread-safe. */
aotflash_status aotflash_model_info(const aotflash_model *model, aotflash_model_desc *out_desc);

/* Text -> token ids: with add_bos non-zero, BOS first; then the tokenizer's encoding of text[0..text_len).
 * Writes up to ids_capacity ids to ids and their count to *out_count; BUFFER_TOO_SMALL (with the count needed in
 * *out_count) when they do not fit; INVALID_UTF8 when the text is not UTF-8. text may be NULL when text_len is 0.
 * Thread-safe. */
aotflash_status aotflash_tokenize(const aotflash_model *model, const char *text, size_t text_len, int32_t add_bos,
                                  int32_t *ids, size_t ids_capacity, size_t *out_count);

/* Token ids -> UTF-8 text: the pieces of ids[0..n_ids) concatenated, BOS and EOS giving no text and the leading
 * space of a token right after BOS left out (as the generated text streams). Writes the text and a terminating NUL
 * to text when text_capacity >= length + 1, and the length (without the NUL) to *out_len; BUFFER_TOO_SMALL (with
 * the length in *out_len) otherwise. TOKEN_OUT_OF_RANGE for an id outside [0, vocab). Thread-safe. */
aotflash_status aotflash_detokenize(const aotflash_model *model, const int32_t *ids, size_t n_ids, char *text,
                                    size_t text_capacity, size_t *out_len);

/* A conversation -> the prompt ids of the model's chat format, ending where the assistant's answer begins.
 * chat_template names the format ("llama2": Meta's [INST] format; "chatml"), or NULL for the spec's. Writes the ids
 * to ids and their count to *out_count; when they do not fit, BUFFER_TOO_SMALL with the count needed and no ids
 * written. What ends the answer besides the spec's stop tokens: *out_stop_token (may be NULL) receives a token
 * (llama2: EOS; ChatML's <|im_end|> where the vocabulary holds it) or -1, *out_stop_text (may be NULL) a static string
 * (ChatML's marker where the vocabulary spells it in pieces) or NULL; the caller stops generating there. Errors:
 * BAD_INPUT (no chat template: the spec names none and chat_template is NULL, or "none"; an unknown template; roles
 * out of the format's order; more text than the context holds), INVALID_UTF8, INVALID_ARGUMENT (a NULL string).
 * Thread-safe. */
aotflash_status aotflash_chat_tokenize(const aotflash_model *model, const aotflash_chat_message *messages, size_t n_messages,
                                       const char *chat_template, int32_t *ids, size_t ids_capacity, size_t *out_count,
                                       int32_t *out_stop_token, const char **out_stop_text);

/* A new session on the model: its own KV cache, FFN source (in flash mode its own neuron caches and reader) and
 * sampler. params may be NULL (those given to aotflash_model_open); mode and dram_budget are the model's whatever
 * params says. The caller frees it with aotflash_session_free. Thread-safe. */
aotflash_status aotflash_session_new(aotflash_model *model, const aotflash_params *params,
                                     aotflash_session **out_session);

/* Frees the session and everything it holds; later calls with it give INVALID_HANDLE. BUSY while it is in use. */
aotflash_status aotflash_session_free(aotflash_session *session);

/* Generates from the prompt ids (usually from aotflash_tokenize with add_bos) as a new sequence from position 0:
 * the prompt is run, then tokens are sampled until a stop token, max_new_tokens (negative: no limit), the end of
 * the context, or the callback returning non-zero. on_token (may be NULL) receives each generated token's text;
 * *out_stop_reason (may be NULL) receives why it stopped. Errors: INVALID_ARGUMENT (no prompt ids),
 * TOKEN_OUT_OF_RANGE, CONTEXT_FULL (prompt longer than the context), BUSY, RUNTIME. */
aotflash_status aotflash_generate(aotflash_session *session, const int32_t *prompt, size_t n_prompt,
                                  int32_t max_new_tokens, aotflash_token_fn on_token, void *user_data,
                                  aotflash_stop_reason *out_stop_reason);

/* Runs tokens[0..n_tokens) at positions pos, pos+1, ... and writes the logits after the last one (vocab floats)
 * to logits. pos may be at most the positions the session holds (aotflash_session_stats.positions), so the cache
 * before it is valid; pos 0 starts a new sequence. Afterwards the session holds pos + n_tokens positions. Checked
 * before anything runs: BUFFER_TOO_SMALL (with vocab in *out_count) when logits_capacity < vocab, INVALID_ARGUMENT
 * (n_tokens 0, pos out of range), TOKEN_OUT_OF_RANGE, CONTEXT_FULL (pos + n_tokens > context), BUSY. */
aotflash_status aotflash_eval_logits(aotflash_session *session, const int32_t *tokens, size_t n_tokens, int32_t pos,
                                     float *logits, size_t logits_capacity, size_t *out_count);

/* The session's statistics into *out_stats (whose size field the caller sets). BUSY while it is in use. */
aotflash_status aotflash_stats(const aotflash_session *session, aotflash_session_stats *out_stats);

#ifdef __cplusplus
}
#endif

#endif /* AOTFLASH_H */
