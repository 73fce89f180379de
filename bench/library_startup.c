/*
 * Start-up of a model library built by publish.sh --lib: the time from dlopen to the first generated token, split
 * into dlopen, aotflash_model_open (the packed model), aotflash_session_new, aotflash_tokenize and the first token
 * of aotflash_generate (prompt included). One process measures one start, so run it several times.
 *
 *   cc -O2 -std=c99 -I artifacts/stories260K-relu -o library_startup bench/library_startup.c -ldl
 *   ./library_startup artifacts/stories260K-relu/libstories260K-relu.so "Once upon a time"
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aotflash.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double first_token_at;

static int32_t stop_at_first(int32_t token, const char *piece, size_t piece_len, void *user_data) {
    (void)token, (void)piece, (void)piece_len, (void)user_data;
    first_token_at = now_ms();
    return 1;
}

/* POSIX's way to take a function from dlsym (ISO C has no object-to-function pointer cast). */
#define LOAD(name)  \
    name##_fn name; \
    *(void **)(&name) = dlsym(lib, #name)
typedef aotflash_params (*aotflash_default_params_fn)(void);
typedef aotflash_status (*aotflash_model_open_fn)(const char *, const aotflash_params *, aotflash_model **);
typedef aotflash_status (*aotflash_session_new_fn)(aotflash_model *, const aotflash_params *, aotflash_session **);
typedef aotflash_status (*aotflash_tokenize_fn)(const aotflash_model *, const char *, size_t, int32_t, int32_t *, size_t, size_t *);
typedef aotflash_status (*aotflash_generate_fn)(aotflash_session *, const int32_t *, size_t, int32_t, aotflash_token_fn, void *,
                                                aotflash_stop_reason *);
typedef const char *(*aotflash_last_error_fn)(void);

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBRARY [PROMPT]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    double t0 = now_ms();
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "error: %s\n", dlerror());
        return 1;
    }
    double t_dlopen = now_ms();
    LOAD(aotflash_default_params);
    LOAD(aotflash_model_open);
    LOAD(aotflash_session_new);
    LOAD(aotflash_tokenize);
    LOAD(aotflash_generate);
    LOAD(aotflash_last_error);
    aotflash_params params = aotflash_default_params();
    params.temperature = 0.0f;
    params.threads = 1;
    aotflash_model *model = NULL;
    aotflash_session *session = NULL;
    int32_t ids[512];
    size_t n = 0;
    if (aotflash_model_open(NULL, &params, &model) != AOTFLASH_OK) goto fail;
    double t_open = now_ms();
    if (aotflash_session_new(model, NULL, &session) != AOTFLASH_OK) goto fail;
    double t_session = now_ms();
    if (aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, 512, &n) != AOTFLASH_OK) goto fail;
    double t_tokenize = now_ms();
    if (aotflash_generate(session, ids, n, 1, stop_at_first, NULL, NULL) != AOTFLASH_OK) goto fail;
    printf("dlopen %.2f ms, model_open %.2f ms, session_new %.2f ms, tokenize %.2f ms, first token %.2f ms; "
           "dlopen to first token %.2f ms\n",
           t_dlopen - t0, t_open - t_dlopen, t_session - t_open, t_tokenize - t_session, first_token_at - t_tokenize,
           first_token_at - t0);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", aotflash_last_error());
    return 1;
}
