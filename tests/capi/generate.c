/*
 * A C program on chispa's C API (core/capi/include/chispa.h): loads a .chispa file, opens a
 * session in an arena of exactly chispa_arena_bytes(), generates after a prompt and prints
 *
 *   <the generated text>
 *   ids: <generated token ids>
 *   stop: <none|max_tokens|end_of_sequence|context_full>
 *   digest: <16 hex digits, as `chispa run --digest` prints>
 *
 * Usage: generate MODEL PROMPT STEPS KV CONTEXT TEMPERATURE TOP_P SEED
 *   STEPS: a count, or "max" (until the context is full or the model stops);
 *   KV: f32, f16, int8 or k10v7; CONTEXT: tokens, 0 for the model's maximum.
 * Exit status: 0 done, 1 bad usage, 2 cannot read the model or allocate, 3 a chispa error.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chispa.h"

static int fail(const char *what, ChispaStatus status) {
    fprintf(stderr, "%s: %s (%d)\n", what, chispa_status_message(status), (int)status);
    return 3;
}

/* The file's bytes in a 64-byte aligned buffer (as firmware keeps a model in flash). */
static uint8_t *read_model(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    uint8_t *bytes = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
            size_t size = ((size_t)n + 63) / 64 * 64;
            bytes = aligned_alloc(64, size);
            if (bytes && fread(bytes, 1, (size_t)n, f) != (size_t)n) {
                free(bytes);
                bytes = NULL;
            }
            *len = (size_t)n;
        }
    }
    fclose(f);
    return bytes;
}

static int parse_kv(const char *s, uint32_t *kv) {
    static const char *names[] = {"f32", "f16", "int8", "k10v7"};
    static const uint32_t codes[] = {CHISPA_KV_F32, CHISPA_KV_F16, CHISPA_KV_INT8, CHISPA_KV_K10V7};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *kv = codes[i];
            return 1;
        }
    }
    return 0;
}

static const char *stop_name(ChispaStop s) {
    switch (s) {
    case CHISPA_STOP_MAX_TOKENS: return "max_tokens";
    case CHISPA_STOP_END_OF_SEQUENCE: return "end_of_sequence";
    case CHISPA_STOP_CONTEXT_FULL: return "context_full";
    default: return "none";
    }
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL PROMPT STEPS KV CONTEXT TEMPERATURE TOP_P SEED\n", argv[0]);
        return 1;
    }
    const char *prompt = argv[2];
    char *end;
    size_t steps = strcmp(argv[3], "max") == 0 ? SIZE_MAX : (size_t)strtoull(argv[3], &end, 10);
    ChispaConfig cfg = {0};
    if (!parse_kv(argv[4], &cfg.kv)) {
        fprintf(stderr, "KV must be f32, f16, int8 or k10v7, not %s\n", argv[4]);
        return 1;
    }
    cfg.context = (uint32_t)strtoul(argv[5], &end, 10);
    cfg.temperature = strtof(argv[6], &end);
    cfg.top_p = strtof(argv[7], &end);
    cfg.seed = (uint64_t)strtoull(argv[8], &end, 10);

    size_t model_len = 0;
    uint8_t *model = read_model(argv[1], &model_len);
    if (!model) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    size_t need = 0;
    ChispaStatus st = chispa_arena_bytes(model, model_len, cfg.context, cfg.kv, &need);
    if (st != CHISPA_STATUS_OK) {
        return fail("chispa_arena_bytes", st);
    }
    uint8_t *arena = aligned_alloc(16, (need + 15) / 16 * 16);
    if (!arena) {
        fprintf(stderr, "cannot allocate the arena of %zu bytes\n", need);
        return 2;
    }
    ChispaSession *s = NULL;
    st = chispa_open(model, model_len, arena, need, &cfg, &s);
    if (st != CHISPA_STATUS_OK) {
        return fail("chispa_open", st);
    }
    ChispaInfo info;
    st = chispa_info(s, &info);
    if (st != CHISPA_STATUS_OK) {
        return fail("chispa_info", st);
    }
    fprintf(stderr, "arena: %zu bytes, context %zu, vocabulary %zu\n", need, info.context,
            info.vocab_size);
    uint8_t *piece = malloc(info.max_piece_bytes);
    uint32_t *ids = malloc(info.context * sizeof *ids);
    if (!piece || !ids) {
        return 2;
    }
    st = chispa_prompt(s, (const uint8_t *)prompt, strlen(prompt), steps);
    if (st != CHISPA_STATUS_OK) {
        return fail("chispa_prompt", st);
    }
    size_t n = 0, len = 0;
    uint32_t id = 0;
    while ((st = chispa_next(s, piece, info.max_piece_bytes, &len, &id)) == CHISPA_STATUS_OK) {
        fwrite(piece, 1, len, stdout);
        if (n < info.context) {
            ids[n++] = id;
        }
    }
    if (st != CHISPA_STATUS_DONE) {
        return fail("chispa_next", st);
    }
    printf("\nids:");
    for (size_t i = 0; i < n; i++) {
        printf(" %" PRIu32, ids[i]);
    }
    ChispaStop stop = CHISPA_STOP_NONE;
    uint64_t digest = 0;
    if ((st = chispa_stop_reason(s, &stop)) != CHISPA_STATUS_OK) {
        return fail("chispa_stop_reason", st);
    }
    if ((st = chispa_digest(s, &digest)) != CHISPA_STATUS_OK) {
        return fail("chispa_digest", st);
    }
    printf("\nstop: %s\ndigest: %016" PRIx64 "\n", stop_name(stop), digest);
    if ((st = chispa_close(s)) != CHISPA_STATUS_OK) {
        return fail("chispa_close", st);
    }
    free(ids);
    free(piece);
    free(arena);
    free(model);
    return 0;
}
