/*
 * Streams a story from a model library built by `./publish.sh modelspecs/stories260K-relu.yaml --lib`, like
 * `stories260K-relu run -p PROMPT -n N --temp T`: the prompt, then each token's text as it is generated.
 *
 *   cc -std=c99 -I artifacts/stories260K-relu -o stream examples/c/stream.c \
 *      -L artifacts/stories260K-relu -l:libstories260K-relu.so -Wl,-rpath,'$ORIGIN'/artifacts/stories260K-relu
 *   ./stream "Once upon a time" 100 0
 *
 * Arguments: [PROMPT [MAX_NEW_TOKENS [TEMPERATURE]]], by default "Once upon a time", 100 and 0 (greedy).
 * The model is the one packed into the library; set AOTFLASH_MODEL to use a model file (.afm) instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aotflash.h"

static int fail(const char *what, aotflash_status status) {
    fprintf(stderr, "error: %s: %s (%s)\n", what, aotflash_last_error(), aotflash_status_string(status));
    return 1;
}

/* The token callback: print the text as it comes; 0 = go on. */
static int32_t print_piece(int32_t token, const char *piece, size_t piece_len, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, piece_len, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *prompt = argc > 1 ? argv[1] : "Once upon a time";
    int32_t max_new_tokens = argc > 2 ? (int32_t)atoi(argv[2]) : 100;
    aotflash_params params = aotflash_default_params();
    params.temperature = argc > 3 ? (float)atof(argv[3]) : 0.0f;

    aotflash_model *model = NULL;
    aotflash_status status = aotflash_model_open(getenv("AOTFLASH_MODEL"), &params, &model);
    if (status != AOTFLASH_OK) return fail("opening the model", status);

    /* Tokenize with BOS: ask for the size first, then fill a buffer of that size. */
    size_t n_prompt = 0;
    status = aotflash_tokenize(model, prompt, strlen(prompt), 1, NULL, 0, &n_prompt);
    if (status != AOTFLASH_ERR_BUFFER_TOO_SMALL && status != AOTFLASH_OK) return fail("tokenizing", status);
    int32_t *ids = malloc(n_prompt * sizeof *ids);
    if (ids == NULL) return 1;
    status = aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, n_prompt, &n_prompt);
    if (status != AOTFLASH_OK) return fail("tokenizing", status);

    aotflash_session *session = NULL;
    status = aotflash_session_new(model, NULL, &session);
    if (status != AOTFLASH_OK) return fail("creating a session", status);

    fputs(prompt, stdout);
    aotflash_stop_reason reason;
    status = aotflash_generate(session, ids, n_prompt, max_new_tokens, print_piece, NULL, &reason);
    if (status != AOTFLASH_OK) return fail("generating", status);
    fputs("\n", stdout);

    aotflash_session_stats stats = {.size = sizeof stats};
    status = aotflash_stats(session, &stats);
    if (status != AOTFLASH_OK) return fail("reading the statistics", status);
    static const char *const modes[] = {"auto", "dense", "naive", "flash"};
    fprintf(stderr, "[%d tokens, %s mode: load %.1f ms, first token %.1f ms, %.2f ms/token, peak DRAM %lld bytes]\n",
            stats.generated_tokens, modes[stats.mode], stats.load_ms, stats.ttft_ms, stats.ms_per_token,
            (long long)stats.peak_dram_bytes);

    free(ids);
    aotflash_session_free(session);
    aotflash_model_close(model);
    return 0;
}
