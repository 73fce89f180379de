/*
 * The C API under misuse and under concurrency, against a model library built by publish.sh --lib:
 * every misuse must come back as its status (with a message in aotflash_last_error), never a crash; two sessions
 * generating at once on two threads must each produce what they produce alone.
 *
 *   cc -std=c99 -pthread -I DIR misuse.c -L DIR -l:lib<name>.so -Wl,-rpath,DIR && ./a.out DIR/<name>.afm
 *
 * Prints one line per check ("ok - ..." or "FAIL - ...") and "passed N of N checks" last; exits 0 only when all pass.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aotflash.h"

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) failures++;
    printf("%s - %s\n", ok ? "ok" : "FAIL", what);
}

/* A call must return `expected` and leave a message; a success must leave "". */
static void expect(aotflash_status actual, aotflash_status expected, const char *what) {
    const char *error = aotflash_last_error();
    int ok = actual == expected && (expected == AOTFLASH_OK ? error[0] == '\0' : error[0] != '\0');
    checks++;
    if (!ok) failures++;
    if (ok)
        printf("ok - %s: %s%s%s\n", what, aotflash_status_string(actual), error[0] ? ": " : "", error);
    else
        printf("FAIL - %s: expected %s, got %s (%s)\n", what, aotflash_status_string(expected),
               aotflash_status_string(actual), error);
}

/* ---- generation helpers ---- */

#define MAX_TOKENS 600

typedef struct {
    int32_t ids[MAX_TOKENS];
    int count;
    int stop_after; /* > 0: ask to stop after this many tokens */
    aotflash_session *self; /* when set, the callback tries to misuse its own session */
    aotflash_status busy_free, busy_generate;
} collected;

static int32_t collect(int32_t token, const char *piece, size_t piece_len, void *user_data) {
    collected *c = user_data;
    (void)piece;
    (void)piece_len;
    if (c->count < MAX_TOKENS) c->ids[c->count] = token;
    c->count++;
    if (c->self != NULL) {
        int32_t bos = 1;
        c->busy_free = aotflash_session_free(c->self);
        c->busy_generate = aotflash_generate(c->self, &bos, 1, 1, NULL, NULL, NULL);
        c->self = NULL;
    }
    return c->stop_after > 0 && c->count >= c->stop_after;
}

static size_t tokenize(aotflash_model *model, const char *text, int32_t *ids, size_t capacity) {
    size_t n = 0;
    if (aotflash_tokenize(model, text, strlen(text), 1, ids, capacity, &n) != AOTFLASH_OK) return 0;
    return n;
}

/* ---- two threads ---- */

typedef struct {
    aotflash_session *session;
    int32_t prompt[64];
    size_t n_prompt;
    collected out;
    aotflash_status status;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    memset(&j->out, 0, sizeof j->out);
    j->status = aotflash_generate(j->session, j->prompt, j->n_prompt, 120, collect, &j->out, NULL);
    return NULL;
}

static int same_tokens(const collected *a, const collected *b) {
    return a->count == b->count && memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)(a->count < MAX_TOKENS ? a->count : MAX_TOKENS)) == 0;
}

static int32_t cancel_at_half(float progress, void *user_data) {
    (void)user_data;
    return progress >= 0.5f;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.afm\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    char text[4096];
    int32_t ids[1024];
    size_t n = 0;

    check(strcmp(aotflash_version(), AOTFLASH_VERSION) == 0, "aotflash_version() is the header's AOTFLASH_VERSION");

    /* ---- opening ---- */
    aotflash_params params = aotflash_default_params();
    check(params.size == sizeof params, "default params carry their size");
    aotflash_model *model = NULL;
    expect(aotflash_model_open(NULL, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "model_open with out_model NULL");
    expect(aotflash_model_open("/nonexistent/model.afm", NULL, &model), AOTFLASH_ERR_BAD_INPUT, "model_open of a missing file");
    check(model == NULL, "a failed open leaves out_model alone");
    char bad_file[] = "/tmp/aotflash-misuse-XXXXXX";
    int fd = mkstemp(bad_file);
    if (fd >= 0) {
        char junk[8192];
        memset(junk, 'x', sizeof junk);
        check(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk, "wrote a file that is not a model");
        close(fd);
        expect(aotflash_model_open(bad_file, NULL, &model), AOTFLASH_ERR_BAD_INPUT, "model_open of a file that is not a model");
        unlink(bad_file);
    }
    aotflash_params bad = params;
    bad.size = 0;
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_INVALID_ARGUMENT, "params.size 0");
    bad.size = sizeof bad + 8;
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_INVALID_ARGUMENT, "params.size larger than the library knows");
    bad = params;
    bad.mode = 42;
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_INVALID_ARGUMENT, "params.mode out of range");
    bad = params;
    bad.temperature = -1.0f;
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_INVALID_ARGUMENT, "negative temperature");
    bad = params;
    bad.dram_budget = "1KiB";
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_BAD_INPUT, "a DRAM budget too small for the weights");
    bad = params;
    bad.progress = cancel_at_half;
    expect(aotflash_model_open(NULL, &bad, &model), AOTFLASH_ERR_CANCELLED, "the progress callback cancels the open");

    params.temperature = 0.0f; /* greedy */
    params.threads = 1;
    expect(aotflash_model_open(model_path, &params, &model), AOTFLASH_OK, "model_open of the model file");
    aotflash_model *packed = NULL;
    expect(aotflash_model_open(NULL, &params, &packed), AOTFLASH_OK, "model_open of the packed model");

    aotflash_model_desc desc = {.size = sizeof desc};
    expect(aotflash_model_info(model, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "model_info with out_desc NULL");
    expect(aotflash_model_info(model, &desc), AOTFLASH_OK, "model_info");
    check(desc.vocab > 0 && desc.context > 0 && strcmp(desc.spec_hash, aotflash_spec_hash()) == 0,
          "model_info: vocab, context, and the library's spec hash");
    aotflash_model_desc old_desc = {.size = 8}; /* an older, shorter struct: only size and vocab */
    expect(aotflash_model_info(model, &old_desc), AOTFLASH_OK, "model_info into a shorter struct");
    check(old_desc.vocab == desc.vocab && old_desc.context == 0, "a shorter struct gets only its own fields");

    /* ---- handles ---- */
    int local = 0;
    aotflash_model *foreign = (aotflash_model *)&local;
    void *heap = malloc(64);
    expect(aotflash_tokenize(NULL, "a", 1, 1, ids, 1024, &n), AOTFLASH_ERR_INVALID_HANDLE, "tokenize with a NULL model");
    expect(aotflash_tokenize(foreign, "a", 1, 1, ids, 1024, &n), AOTFLASH_ERR_INVALID_HANDLE, "tokenize with a stack pointer as model");
    expect(aotflash_model_info((aotflash_model *)heap, &desc), AOTFLASH_ERR_INVALID_HANDLE, "model_info with a heap pointer as model");
    expect(aotflash_model_close((aotflash_model *)heap), AOTFLASH_ERR_INVALID_HANDLE, "model_close of a heap pointer");
    expect(aotflash_session_free((aotflash_session *)heap), AOTFLASH_ERR_INVALID_HANDLE, "session_free of a heap pointer");
    free(heap);
    aotflash_session *session = NULL;
    expect(aotflash_session_new(model, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "session_new with out_session NULL");
    expect(aotflash_session_new(model, NULL, &session), AOTFLASH_OK, "session_new");
    expect(aotflash_model_close((aotflash_model *)session), AOTFLASH_ERR_INVALID_HANDLE, "a session handle passed as a model");
    expect(aotflash_session_free((aotflash_session *)model), AOTFLASH_ERR_INVALID_HANDLE, "a model handle passed as a session");

    /* ---- tokenize / detokenize ---- */
    const char *prompt = "Once upon a time";
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, 1024, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "tokenize with out_count NULL");
    expect(aotflash_tokenize(model, NULL, 5, 1, ids, 1024, &n), AOTFLASH_ERR_INVALID_ARGUMENT, "tokenize NULL text of length 5");
    expect(aotflash_tokenize(model, "\xff\xfe", 2, 1, ids, 1024, &n), AOTFLASH_ERR_INVALID_UTF8, "tokenize invalid UTF-8");
    n = 0;
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, NULL, 0, &n), AOTFLASH_ERR_BUFFER_TOO_SMALL, "tokenize size query");
    size_t needed = n;
    check(needed >= 2, "the size query gives the count");
    ids[0] = -7;
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, needed - 1, &n), AOTFLASH_ERR_BUFFER_TOO_SMALL, "tokenize into one id too few");
    check(n == needed && ids[0] == -7, "too small: the count again, the buffer untouched");
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, needed, &n), AOTFLASH_OK, "tokenize into the exact size");
    check(n == needed && ids[0] == desc.bos, "BOS first");
    expect(aotflash_tokenize(model, NULL, 0, 0, NULL, 0, &n), AOTFLASH_OK, "tokenize empty text without BOS");
    check(n == 0, "no ids for empty text");
    size_t len = 0;
    expect(aotflash_detokenize(model, ids, needed, NULL, 0, &len), AOTFLASH_ERR_BUFFER_TOO_SMALL, "detokenize size query");
    check(len == strlen(prompt), "detokenize needs the prompt's length");
    expect(aotflash_detokenize(model, ids, needed, text, len, &len), AOTFLASH_ERR_BUFFER_TOO_SMALL, "detokenize without room for the NUL");
    expect(aotflash_detokenize(model, ids, needed, text, sizeof text, &len), AOTFLASH_OK, "detokenize");
    check(strcmp(text, prompt) == 0, "detokenize(tokenize(prompt)) is the prompt");
    int32_t out_of_range[] = {desc.bos, desc.vocab};
    expect(aotflash_detokenize(model, out_of_range, 2, text, sizeof text, &len), AOTFLASH_ERR_TOKEN_OUT_OF_RANGE, "detokenize id == vocab");
    expect(aotflash_detokenize(model, NULL, 2, text, sizeof text, &len), AOTFLASH_ERR_INVALID_ARGUMENT, "detokenize NULL ids");
    expect(aotflash_detokenize(model, ids, needed, text, sizeof text, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "detokenize with out_len NULL");

    /* ---- chat_tokenize ---- */
    aotflash_chat_message chat[] = {{"system", "Be brief."}, {"user", "Hi"}};
    int32_t stop_token = 7;
    const char *stop_text = "unset";
    expect(aotflash_chat_tokenize(NULL, chat, 2, "llama2", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_INVALID_HANDLE, "chat_tokenize with a NULL model");
    expect(aotflash_chat_tokenize(model, chat, 2, NULL, ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_BAD_INPUT, "chat_tokenize on a base model without a template");
    expect(aotflash_chat_tokenize(model, chat, 2, "alpaca", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_BAD_INPUT, "chat_tokenize with an unknown template");
    expect(aotflash_chat_tokenize(model, chat + 1, 1, "llama2", ids, 1024, NULL, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "chat_tokenize with out_count NULL");
    expect(aotflash_chat_tokenize(model, NULL, 2, "llama2", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "chat_tokenize NULL messages");
    aotflash_chat_message no_role[] = {{NULL, "Hi"}};
    expect(aotflash_chat_tokenize(model, no_role, 1, "llama2", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "chat_tokenize with a NULL role");
    aotflash_chat_message bad_text[] = {{"user", "\xff"}};
    expect(aotflash_chat_tokenize(model, bad_text, 1, "llama2", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_INVALID_UTF8, "chat_tokenize invalid UTF-8");
    aotflash_chat_message out_of_order[] = {{"assistant", "Hi"}};
    expect(aotflash_chat_tokenize(model, out_of_order, 1, "llama2", ids, 1024, &n, NULL, NULL), AOTFLASH_ERR_BAD_INPUT, "chat_tokenize, assistant first");
    n = 0;
    expect(aotflash_chat_tokenize(model, chat, 2, "llama2", NULL, 0, &n, NULL, NULL), AOTFLASH_ERR_BUFFER_TOO_SMALL, "chat_tokenize size query");
    size_t chat_needed = n;
    expect(aotflash_chat_tokenize(model, chat, 2, "llama2", ids, chat_needed, &n, &stop_token, &stop_text), AOTFLASH_OK, "chat_tokenize llama2");
    check(n == chat_needed && ids[0] == desc.bos && stop_token == desc.eos && stop_text == NULL, "llama2: BOS first, EOS ends the answer");
    expect(aotflash_chat_tokenize(model, chat, 2, "chatml", ids, 1024, &n, &stop_token, &stop_text), AOTFLASH_OK, "chat_tokenize chatml");
    check(stop_token == -1 && stop_text != NULL && strcmp(stop_text, "<|im_end|>") == 0, "chatml spelled in pieces ends at its marker's text");

    /* ---- generate ---- */
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, needed, &n), AOTFLASH_OK, "tokenize the prompt again");
    size_t n_prompt = needed;
    int32_t negative[] = {desc.bos, -1};
    expect(aotflash_generate(session, NULL, 3, 5, NULL, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "generate with NULL prompt");
    expect(aotflash_generate(session, ids, 0, 5, NULL, NULL, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "generate with no prompt ids");
    expect(aotflash_generate(session, out_of_range, 2, 5, NULL, NULL, NULL), AOTFLASH_ERR_TOKEN_OUT_OF_RANGE, "generate with id == vocab");
    expect(aotflash_generate(session, negative, 2, 5, NULL, NULL, NULL), AOTFLASH_ERR_TOKEN_OUT_OF_RANGE, "generate with id -1");
    int32_t *long_prompt = calloc((size_t)desc.context + 1, sizeof *long_prompt);
    expect(aotflash_generate(session, long_prompt, (size_t)desc.context + 1, 5, NULL, NULL, NULL), AOTFLASH_ERR_CONTEXT_FULL, "a prompt longer than the context");
    free(long_prompt);

    collected full = {0};
    aotflash_stop_reason reason = -1;
    expect(aotflash_generate(session, ids, n_prompt, 40, collect, &full, &reason), AOTFLASH_OK, "generate 40 tokens");
    check(reason == AOTFLASH_STOP_LENGTH && full.count == 40, "stopped at the length, every token to the callback");
    collected stopped = {0};
    stopped.stop_after = 3;
    expect(aotflash_generate(session, ids, n_prompt, 40, collect, &stopped, &reason), AOTFLASH_OK, "generate, the callback stops at 3");
    check(reason == AOTFLASH_STOP_CALLBACK && stopped.count == 3 && memcmp(stopped.ids, full.ids, 3 * sizeof(int32_t)) == 0,
          "the callback stopped it after the same first 3 tokens");
    collected reentrant = {0};
    reentrant.self = session;
    reentrant.stop_after = 2;
    expect(aotflash_generate(session, ids, n_prompt, 40, collect, &reentrant, &reason), AOTFLASH_OK, "generate whose callback misuses its session");
    check(reentrant.busy_free == AOTFLASH_ERR_BUSY && reentrant.busy_generate == AOTFLASH_ERR_BUSY,
          "session_free and generate from inside the session's own callback are BUSY");

    aotflash_session_stats stats = {.size = sizeof stats};
    expect(aotflash_stats(session, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "stats with out_stats NULL");
    expect(aotflash_stats(session, &stats), AOTFLASH_OK, "stats");
    check(stats.generated_tokens == 2 && stats.stop_reason == AOTFLASH_STOP_CALLBACK && stats.prompt_tokens == (int32_t)n_prompt
          && stats.peak_dram_bytes > 0 && stats.threads == 1, "stats describe the last generation");
    aotflash_session_stats bad_stats = {.size = 0};
    expect(aotflash_stats(session, &bad_stats), AOTFLASH_ERR_INVALID_ARGUMENT, "stats with size 0");

    /* ---- eval_logits ---- */
    float *logits = malloc(sizeof(float) * (size_t)desc.vocab);
    float *step = malloc(sizeof(float) * (size_t)desc.vocab);
    size_t count = 0;
    expect(aotflash_eval_logits(session, ids, n_prompt, 0, NULL, 0, &count), AOTFLASH_ERR_BUFFER_TOO_SMALL, "eval_logits size query");
    check(count == (size_t)desc.vocab, "eval_logits needs vocab floats");
    expect(aotflash_eval_logits(session, ids, n_prompt, 0, logits, count - 1, &count), AOTFLASH_ERR_BUFFER_TOO_SMALL, "eval_logits one float short");
    expect(aotflash_eval_logits(session, ids, n_prompt, 0, logits, count, NULL), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits with out_count NULL");
    expect(aotflash_eval_logits(session, out_of_range, 2, 0, logits, count, &count), AOTFLASH_ERR_TOKEN_OUT_OF_RANGE, "eval_logits id == vocab");
    expect(aotflash_eval_logits(session, ids, 0, 0, logits, count, &count), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits of no tokens");
    expect(aotflash_eval_logits(session, ids, n_prompt, desc.context, logits, count, &count), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits past the positions held");
    expect(aotflash_eval_logits(session, ids, n_prompt, -1, logits, count, &count), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits at pos -1");
    expect(aotflash_eval_logits(session, ids, n_prompt, 0, logits, count, &count), AOTFLASH_OK, "eval_logits of the prompt at once");
    expect(aotflash_eval_logits(session, ids, 1, 0, step, count, &count), AOTFLASH_OK, "eval_logits of BOS");
    int stepwise = 1;
    for (size_t i = 1; i < n_prompt && stepwise; i++)
        stepwise = aotflash_eval_logits(session, ids + i, 1, (int32_t)i, step, count, &count) == AOTFLASH_OK;
    float worst = 0;
    int argmax = 0;
    for (int32_t i = 0; i < desc.vocab; i++) {
        worst = fmaxf(worst, fabsf(logits[i] - step[i]));
        if (logits[i] > logits[argmax]) argmax = i;
    }
    check(stepwise && worst == 0.0f, "the prompt token by token gives the same logits as at once");
    check(argmax == full.ids[0], "the greedy first token is the argmax of the prompt's logits");
    expect(aotflash_stats(session, &stats), AOTFLASH_OK, "stats after eval");
    check(stats.positions == (int32_t)n_prompt, "the session holds the prompt's positions");
    expect(aotflash_eval_logits(session, ids, 1, stats.positions + 1, logits, count, &count), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits leaving a gap");
    expect(aotflash_eval_logits(session, ids, 2, desc.context - 1, logits, count, &count), AOTFLASH_ERR_INVALID_ARGUMENT, "eval_logits far past the positions held");
    free(logits);
    free(step);

    /* ---- two sessions on two threads, each against its output alone ---- */
    job jobs[2];
    memset(jobs, 0, sizeof jobs);
    const char *prompts[2] = {"Once upon a time", "The little dog"};
    aotflash_params sampled = params;
    sampled.temperature = 0.8f;
    sampled.seed = 42;
    const aotflash_params *job_params[2] = {&params, &sampled};
    collected alone[2];
    for (int j = 0; j < 2; j++) {
        jobs[j].n_prompt = tokenize(model, prompts[j], jobs[j].prompt, 64);
        expect(aotflash_session_new(model, job_params[j], &jobs[j].session), AOTFLASH_OK, "a session for a thread");
        run_job(&jobs[j]);
        expect(jobs[j].status, AOTFLASH_OK, "generate alone");
        alone[j] = jobs[j].out;
        aotflash_session_free(jobs[j].session);
    }
    check(alone[0].count > 20 && alone[1].count > 20, "both alone generate text");
    for (int round = 0; round < 3; round++) {
        pthread_t threads[2];
        for (int j = 0; j < 2; j++) {
            aotflash_session_new(model, job_params[j], &jobs[j].session); /* fresh: the sampler starts from its seed again */
            pthread_create(&threads[j], NULL, run_job, &jobs[j]);
        }
        /* The sessions are busy on their threads meanwhile; whatever this thread sees, it must be a status. */
        aotflash_status during = aotflash_stats(jobs[0].session, &stats);
        check(during == AOTFLASH_OK || during == AOTFLASH_ERR_BUSY, "stats of a session generating on another thread: OK or BUSY");
        for (int j = 0; j < 2; j++) pthread_join(threads[j], NULL);
        char what[128];
        for (int j = 0; j < 2; j++) {
            snprintf(what, sizeof what, "round %d, thread %d (%s): same tokens as alone", round, j, j ? "sampled" : "greedy");
            check(jobs[j].status == AOTFLASH_OK && same_tokens(&jobs[j].out, &alone[j]), what);
            expect(aotflash_session_free(jobs[j].session), AOTFLASH_OK, "session_free after the thread");
        }
    }

    /* ---- calls after free and close ---- */
    expect(aotflash_session_free(session), AOTFLASH_OK, "session_free");
    expect(aotflash_session_free(session), AOTFLASH_ERR_INVALID_HANDLE, "session_free twice");
    expect(aotflash_generate(session, ids, n_prompt, 5, NULL, NULL, NULL), AOTFLASH_ERR_INVALID_HANDLE, "generate on a freed session");
    expect(aotflash_stats(session, &stats), AOTFLASH_ERR_INVALID_HANDLE, "stats of a freed session");
    aotflash_session *survivor = NULL;
    expect(aotflash_session_new(model, NULL, &survivor), AOTFLASH_OK, "a session that outlives its model handle");
    expect(aotflash_model_close(model), AOTFLASH_OK, "model_close");
    expect(aotflash_model_close(model), AOTFLASH_ERR_INVALID_HANDLE, "model_close twice");
    expect(aotflash_tokenize(model, prompt, strlen(prompt), 1, ids, 1024, &n), AOTFLASH_ERR_INVALID_HANDLE, "tokenize after close");
    expect(aotflash_session_new(model, NULL, &session), AOTFLASH_ERR_INVALID_HANDLE, "session_new after close");
    collected after = {0};
    expect(aotflash_generate(survivor, ids, n_prompt, 40, collect, &after, NULL), AOTFLASH_OK, "generate on a session after its model was closed");
    check(same_tokens(&after, &full), "it still generates the same tokens");
    expect(aotflash_session_free(survivor), AOTFLASH_OK, "free the last session (unmaps the weights)");
    expect(aotflash_model_close(packed), AOTFLASH_OK, "close the packed model");

    printf("%s %d of %d checks\n", failures ? "FAILED" : "passed", checks - failures, checks);
    return failures ? 1 : 0;
}
