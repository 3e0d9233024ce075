/* Threads: NTHREADS threads call every family of the API at once — status and error details, casts,
 * round-to-nearest kernels and pack/unpack, levels, methods and the per-layer configuration, whole-layer
 * quantization and every quant_weight accessor, calibration, options and the calibration-based methods
 * (GPTQ, AWQ, SmoothQuant), the W8A8 helpers, GGML blocks and the GPTQ/AWQ packers, and the process-wide
 * SIMD level and kernel thread count (changed by some threads while the others compute) — sharing
 * read-only quant_weight, quant_calib, quant_options and quant_config handles made by the main thread. Each thread provokes errors whose detail names its own thread (a buffer of a
 * length only it uses) and checks that its detail survives the other threads' calls. Every result is
 * hashed and must equal the single-threaded run, bit for bit.
 *
 * Run it under helgrind or ThreadSanitizer too (scripts/harden.sh does). */
#include <pthread.h>
#include <stdint.h>

#include "harness.h"

#define NTHREADS 8
#define ROUNDS 6
#define R 24
#define C 80
#define N (R * C)

static quant_method method(quant_method_kind kind, uint32_t bits, uint32_t group, double alpha) {
    quant_method m;
    m.kind = kind;
    m.bits = bits;
    m.group_size = group;
    m.alpha = alpha;
    return m;
}

static void fill_matrix(float *w, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * 0.8f;
    }
}

/* FNV-1a over bytes, chained. */
static uint64_t hash(uint64_t h, const void *p, size_t len) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define HASH_INIT 14695981039346656037ull

/* Shared, read-only after setup. */
static float g_w[N];
static quant_weight *g_weights[3]; /* INT8, INT4 (groups of 16), FP8 (groups of 32) */
static quant_config *g_config;
static const quant_method_kind g_kinds[3] = {QUANT_INT8_SYMMETRIC, QUANT_INT4_ASYMMETRIC, QUANT_FP8_E4M3};
static const uint32_t g_groups[3] = {0, 16, 32};
static quant_calib *g_calib;
static quant_options *g_options;
static quant_weight *g_algo[3]; /* GPTQ (4 bit, groups of 16, act-order), AWQ (groups of 16), SmoothQuant */
static const quant_method_kind g_algo_kinds[3] = {QUANT_GPTQ, QUANT_AWQ, QUANT_SMOOTHQUANT};
#define T 16 /* calibration tokens */
static float g_x[T * C];

/* The settings are relaxed atomics: race-free, but helgrind cannot see atomic instructions and reports
 * them. Under helgrind (QUANT_TEST_KEEP_SETTINGS set) the threads only read them; ThreadSanitizer and the
 * plain runs change them concurrently. */
static int change_globals = 1;

struct job {
    int id;
    uint64_t result; /* hash of everything computed */
    int failures;
    char first_failure[256];
};

#define T_CHECK(j, cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            if ((j)->failures++ == 0)                                                          \
                snprintf((j)->first_failure, sizeof (j)->first_failure, "line %d: %s", __LINE__, \
                         #cond);                                                               \
        }                                                                                      \
    } while (0)

static int detail_contains(const char *needle) {
    char d[512];
    quant_last_error(d, sizeof d);
    return strstr(d, needle) != NULL;
}

/* One round of every family. `id` only changes the error paths (lengths that name the thread), never
 * the results that are hashed. */
static uint64_t one_round(struct job *j, int id) {
    uint64_t h = HASH_INIT;
    char want[64];

    /* Status, version. */
    h = hash(h, quant_status_string(QUANT_ERR_SHAPE_MISMATCH), 10);
    uint32_t v = quant_version();
    h = hash(h, &v, sizeof v);

    /* Casts. */
    uint16_t *f16 = (uint16_t *)malloc(N * sizeof *f16);
    uint16_t *b16 = (uint16_t *)malloc(N * sizeof *b16);
    uint8_t *e4 = (uint8_t *)malloc(N);
    uint8_t *e5 = (uint8_t *)malloc(N);
    float *back = (float *)malloc(N * sizeof *back);
    T_CHECK(j, quant_f32_to_f16(g_w, f16, N) == QUANT_OK);
    T_CHECK(j, quant_f32_to_bf16(g_w, b16, N) == QUANT_OK);
    T_CHECK(j, quant_f32_to_fp8_e4m3(g_w, e4, N, true) == QUANT_OK);
    T_CHECK(j, quant_f32_to_fp8_e5m2(g_w, e5, N, false) == QUANT_OK);
    h = hash(h, f16, N * sizeof *f16);
    h = hash(h, b16, N * sizeof *b16);
    h = hash(h, e4, N);
    h = hash(h, e5, N);
    T_CHECK(j, quant_f16_to_f32(f16, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    T_CHECK(j, quant_bf16_to_f32(b16, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    T_CHECK(j, quant_fp8_e4m3_to_f32(e4, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    T_CHECK(j, quant_fp8_e5m2_to_f32(e5, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);

    /* Round-to-nearest kernels, with a thread-specific error first. */
    int8_t *q8 = (int8_t *)malloc(N);
    uint8_t *q4 = (uint8_t *)malloc(N);
    float scales[R * 8];
    uint8_t zeros[R * 8];
    size_t ns = quant_scale_count(R, C, 16);
    T_CHECK(j, ns == R * 5);
    T_CHECK(j, quant_int8_quantize(g_w, R, C, 16, q8, (size_t)id, scales, ns) == QUANT_ERR_BUFFER_TOO_SMALL);
    snprintf(want, sizeof want, "holds %d elements", id);
    T_CHECK(j, detail_contains(want));
    T_CHECK(j, quant_int8_quantize(g_w, R, C, 16, q8, N, scales, ns) == QUANT_OK);
    h = hash(h, q8, N);
    h = hash(h, scales, ns * sizeof *scales);
    T_CHECK(j, quant_int8_dequantize(q8, scales, R, C, 16, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    size_t np = quant_int4_packed_size(R, C);
    T_CHECK(j, quant_int4_quantize(g_w, R, C, 16, q4, np, scales, zeros, ns) == QUANT_OK);
    h = hash(h, q4, np);
    h = hash(h, zeros, ns);
    T_CHECK(j, quant_int4_dequantize(q4, scales, zeros, R, C, 16, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    T_CHECK(j, quant_fp8_e4m3_quantize(g_w, R, C, 32, e4, N, scales, R * 3) == QUANT_OK);
    T_CHECK(j, quant_fp8_e4m3_dequantize(e4, scales, R, C, 32, back, N) == QUANT_OK);
    h = hash(h, back, N * sizeof *back);
    int8_t nib[16], un[16];
    uint8_t packed[8];
    for (int i = 0; i < 16; i++) nib[i] = (int8_t)(i - 8);
    T_CHECK(j, quant_pack_int4(nib, 16, packed, 8) == QUANT_OK);
    T_CHECK(j, quant_unpack_int4(packed, 16, un, 16) == QUANT_OK);
    T_CHECK(j, memcmp(nib, un, 16) == 0);
    h = hash(h, packed, 8);

    /* Levels, methods, configuration (shared, read only). */
    for (quant_level l = 0; l < 5; l++) {
        uint32_t bits = quant_level_bits(l);
        h = hash(h, &bits, sizeof bits);
        h = hash(h, quant_level_name(l), 4);
    }
    quant_method gm = method(QUANT_GPTQ, 4, 128, 0.0);
    char name[64];
    size_t nl = quant_method_name(&gm, name, sizeof name);
    h = hash(h, name, nl);
    double eb = quant_method_effective_bits(&gm, 4096);
    h = hash(h, &eb, sizeof eb);
    quant_method bad = method(QUANT_GPTQ, 9 + (uint32_t)id, 128, 0.0);
    T_CHECK(j, quant_method_validate(&bad) == QUANT_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want, "(got %d)", 9 + id);
    T_CHECK(j, detail_contains(want));
    const char *layers[4] = {"q_proj", "k_proj", "lm_head", "other"};
    for (int i = 0; i < 4; i++) {
        quant_method m;
        T_CHECK(j, quant_config_method_for_layer(g_config, layers[i], &m) == QUANT_OK);
        h = hash(h, &m.kind, sizeof m.kind);
        h = hash(h, &m.group_size, sizeof m.group_size);
    }
    T_CHECK(j, quant_config_validate(g_config) == QUANT_ERR_INVALID_ARGUMENT);
    T_CHECK(j, detail_contains("layer 'bad'"));

    /* Shared weights: every accessor and the dequantization. */
    for (int k = 0; k < 3; k++) {
        size_t len = 0, rows = 0, cols = 0;
        T_CHECK(j, quant_weight_shape(g_weights[k], &rows, &cols) == QUANT_OK && rows == R && cols == C);
        const uint8_t *d = quant_weight_data(g_weights[k], &len);
        h = hash(h, d, len);
        const float *s = quant_weight_scales(g_weights[k], &len);
        h = hash(h, s, len * sizeof *s);
        const float *z = quant_weight_zero_points(g_weights[k], &len);
        if (z) h = hash(h, z, len * sizeof *z);
        T_CHECK(j, quant_weight_input_scales(g_weights[k], &len) == NULL && len == 0);
        T_CHECK(j, quant_weight_group_index(g_weights[k], &len) == NULL && len == 0);
        quant_method m;
        T_CHECK(j, quant_weight_method(g_weights[k], &m) == QUANT_OK && m.kind == g_kinds[k]);
        T_CHECK(j, quant_weight_dequantize(g_weights[k], back, (size_t)id) == QUANT_ERR_BUFFER_TOO_SMALL);
        snprintf(want, sizeof want, "holds %d elements", id);
        T_CHECK(j, detail_contains(want));
        T_CHECK(j, quant_weight_dequantize(g_weights[k], back, N) == QUANT_OK);
        h = hash(h, back, N * sizeof *back);
    }

    /* Whole-layer quantization of new weights, alone and grouped. */
    for (int k = 0; k < 3; k++) {
        quant_method m = method(g_kinds[k], 0, g_groups[k], 0.0);
        quant_weight *q = NULL;
        T_CHECK(j, quant_quantize(&m, NULL, g_w, R, C, NULL, &q) == QUANT_OK);
        T_CHECK(j, quant_weight_dequantize(q, back, N) == QUANT_OK);
        h = hash(h, back, N * sizeof *back);
        quant_weight_free(q);
        const float *ws[2] = {g_w, g_w + C * 4};
        size_t rows[2] = {4, (size_t)R - 4};
        quant_weight *qs[2] = {NULL, NULL};
        T_CHECK(j, quant_quantize_group(&m, NULL, ws, rows, 2, C, NULL, qs) == QUANT_OK);
        for (int i = 0; i < 2; i++) {
            size_t len = 0;
            const uint8_t *d = quant_weight_data(qs[i], &len);
            h = hash(h, d, len);
            quant_weight_free(qs[i]);
        }
    }

    /* The process-wide SIMD level and kernel thread count: changed by the odd threads while the others
     * compute; every level and count gives bit-identical results. */
    if (id % 2 == 1 && change_globals) {
        T_CHECK(j, quant_set_simd_level(id % 4 == 1 ? QUANT_SIMD_SCALAR : QUANT_SIMD_AUTO) == QUANT_OK);
        T_CHECK(j, quant_set_threads((size_t)(id % 3)) == QUANT_OK);
    }
    T_CHECK(j, quant_set_simd_level(77 + id) == QUANT_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want, "level is %d", 77 + id);
    T_CHECK(j, detail_contains(want));

    /* Calibration (shared, read only), options, and the calibration-based methods. */
    T_CHECK(j, quant_calib_tokens(g_calib) == T);
    for (int k = 0; k < 3; k++) {
        size_t len = 0;
        const uint8_t *d = quant_weight_data(g_algo[k], &len);
        h = hash(h, d, len);
        const float *is = quant_weight_input_scales(g_algo[k], &len);
        if (is) h = hash(h, is, len * sizeof *is);
        const int32_t *gi = quant_weight_group_index(g_algo[k], &len);
        if (gi) h = hash(h, gi, len * sizeof *gi);
        T_CHECK(j, quant_weight_dequantize(g_algo[k], back, N) == QUANT_OK);
        h = hash(h, back, N * sizeof *back);
    }
    {
        quant_method m = method(g_algo_kinds[id % 3], 4, 16, 0.5);
        quant_weight *q = NULL;
        T_CHECK(j, quant_quantize(&m, g_options, g_w, R, C, g_calib, &q) == QUANT_OK);
        T_CHECK(j, quant_weight_dequantize(q, back, N) == QUANT_OK);
        quant_weight_free(q);
        quant_weight *q2 = NULL;
        T_CHECK(j, quant_quantize(&m, g_options, g_w, R, C + (size_t)id, g_calib, &q2) != QUANT_OK);
        T_CHECK(j, q2 == NULL);
        quant_options *o = NULL;
        T_CHECK(j, quant_options_new(&o) == QUANT_OK);
        T_CHECK(j, quant_options_set_threads(o, 5000 + (size_t)id) == QUANT_ERR_INVALID_ARGUMENT);
        T_CHECK(j, quant_options_set_block_size(o, 32) == QUANT_OK);
        quant_options_free(o);
        quant_calib *c = NULL;
        T_CHECK(j, quant_calib_new_ex(C, 0, g_options, &c) == QUANT_OK);
        T_CHECK(j, quant_calib_add(c, g_x, T, C) == QUANT_OK);
        T_CHECK(j, quant_calib_add(c, g_x, T, C - 1) == QUANT_ERR_SHAPE_MISMATCH);
        T_CHECK(j, quant_calib_tokens(c) == T);
        quant_calib_free(c);
    }
    for (int k = 0; k < 3; k++) {
        /* Recompute the shared results from the shared calibration: identical every time. */
        quant_method m = method(g_algo_kinds[k], 4, 16, 0.5);
        quant_weight *q = NULL;
        T_CHECK(j, quant_quantize(&m, g_options, g_w, R, C, g_calib, &q) == QUANT_OK);
        T_CHECK(j, quant_weight_dequantize(q, back, N) == QUANT_OK);
        h = hash(h, back, N * sizeof *back);
        quant_weight_free(q);
    }

    /* W8A8 helpers. */
    {
        float amax[C], wmax[C], ss[C], tscales[T], out[T * R];
        int8_t xa[T * C];
        for (int c = 0; c < C; c++) {
            amax[c] = 0.1f + (float)c / 16.0f;
            wmax[c] = 0.2f + (float)(C - c) / 32.0f;
        }
        T_CHECK(j, quant_smooth_scales(wmax, amax, C, 0.5, ss) == QUANT_OK);
        h = hash(h, ss, sizeof ss);
        T_CHECK(j, quant_quantize_activations(g_x, T, C, ss, xa, T * C, tscales, T) == QUANT_OK);
        h = hash(h, xa, sizeof xa);
        const float *s8 = quant_weight_scales(g_weights[0], NULL);
        const uint8_t *w8 = quant_weight_data(g_weights[0], NULL);
        T_CHECK(j, quant_int8_gemm(xa, tscales, (const int8_t *)w8, s8, T, R, C, out, T * R) == QUANT_OK);
        h = hash(h, out, sizeof out);
        T_CHECK(j, quant_int8_gemm(xa, tscales, (const int8_t *)w8, s8, T, R, C, out, (size_t)id) == QUANT_ERR_BUFFER_TOO_SMALL);
        snprintf(want, sizeof want, "holds %d elements", id);
        T_CHECK(j, detail_contains(want));
    }

    /* GGML blocks and the GPTQ / AWQ packers (on the shared weights). */
    {
        static const int32_t types[16] = {QUANT_GGML_TYPE_Q4_0, QUANT_GGML_TYPE_Q4_1, QUANT_GGML_TYPE_Q5_0,
                                          QUANT_GGML_TYPE_Q5_1, QUANT_GGML_TYPE_Q8_0, QUANT_GGML_TYPE_Q2_K,
                                          QUANT_GGML_TYPE_Q3_K, QUANT_GGML_TYPE_Q4_K, QUANT_GGML_TYPE_Q5_K,
                                          QUANT_GGML_TYPE_Q6_K, QUANT_GGML_TYPE_IQ4_NL, QUANT_GGML_TYPE_IQ4_XS,
                                          QUANT_GGML_TYPE_TQ1_0, QUANT_GGML_TYPE_TQ2_0,
                                          QUANT_GGML_TYPE_MXFP4, QUANT_GGML_TYPE_NVFP4};
        uint8_t *blocks = (uint8_t *)malloc(N * 2);
        for (int t = 0; t < 16; t++) {
            size_t rs = quant_ggml_row_size(types[t], 256);
            T_CHECK(j, rs > 0 && quant_ggml_quantize(types[t], g_w, 7, 256, blocks, N * 2) == QUANT_OK);
            h = hash(h, blocks, 7 * rs);
            T_CHECK(j, quant_ggml_dequantize(types[t], blocks, 7 * rs, back, 7 * 256) == QUANT_OK);
            h = hash(h, back, 7 * 256 * sizeof *back);
        }
        T_CHECK(j, quant_ggml_quantize(QUANT_GGML_TYPE_Q8_0, g_w, 1, 32, blocks, (size_t)id) == QUANT_ERR_BUFFER_TOO_SMALL);
        snprintf(want, sizeof want, "holds %d bytes", id); /* blocks are counted in bytes */
        T_CHECK(j, detail_contains(want));
        free(blocks);
        size_t a1, a2, a3, a4;
        T_CHECK(j, quant_weight_gptq_sizes(g_algo[0], &a1, &a2, &a3, &a4) == QUANT_OK);
        int32_t *qw = (int32_t *)malloc(a1 * sizeof *qw), *qz = (int32_t *)malloc(a2 * sizeof *qz);
        uint16_t *sc = (uint16_t *)malloc(a3 * sizeof *sc);
        int32_t *gi = (int32_t *)malloc(a4 * sizeof *gi);
        T_CHECK(j, quant_weight_pack_gptq(g_algo[0], 2, qw, a1, qz, a2, sc, a3, gi, a4) == QUANT_OK);
        h = hash(h, qw, a1 * sizeof *qw);
        h = hash(h, qz, a2 * sizeof *qz);
        h = hash(h, sc, a3 * sizeof *sc);
        h = hash(h, gi, a4 * sizeof *gi);
        free(qw);
        free(qz);
        free(sc);
        free(gi);
        T_CHECK(j, quant_weight_awq_sizes(g_algo[1], &a1, &a2, &a3) == QUANT_OK);
        qw = (int32_t *)malloc(a1 * sizeof *qw);
        qz = (int32_t *)malloc(a2 * sizeof *qz);
        sc = (uint16_t *)malloc(a3 * sizeof *sc);
        T_CHECK(j, quant_weight_pack_awq(g_algo[1], qw, a1, qz, a2, sc, a3) == QUANT_OK);
        h = hash(h, qw, a1 * sizeof *qw);
        h = hash(h, qz, a2 * sizeof *qz);
        h = hash(h, sc, a3 * sizeof *sc);
        free(qw);
        free(qz);
        free(sc);
    }

    /* The thread's own detail survives everything the other threads did meanwhile. */
    T_CHECK(j, quant_f32_to_f16(NULL, f16, 1000 + (size_t)id) == QUANT_ERR_NULL_POINTER);
    for (int i = 0; i < 50; i++) {
        uint16_t x;
        (void)quant_f32_to_f16(g_w, &x, 1); /* success clears the detail ... */
        T_CHECK(j, quant_last_error(NULL, 0) == 0);
        quant_method u = method(100 + id, 0, 0, 0.0); /* ... an error sets this thread's own */
        T_CHECK(j, quant_method_validate(&u) == QUANT_ERR_INVALID_ARGUMENT);
        snprintf(want, sizeof want, "kind %d", 100 + id);
        T_CHECK(j, detail_contains(want));
    }

    free(f16);
    free(b16);
    free(e4);
    free(e5);
    free(back);
    free(q8);
    free(q4);
    return h;
}

static void *worker(void *arg) {
    struct job *j = (struct job *)arg;
    uint64_t first = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t h = one_round(j, j->id);
        if (r == 0)
            first = h;
        else
            T_CHECK(j, h == first);
    }
    j->result = first;
    return NULL;
}

int main(void) {
    change_globals = getenv("QUANT_TEST_KEEP_SETTINGS") == NULL;
    fill_matrix(g_w, N, 7);
    for (int k = 0; k < 3; k++) {
        quant_method m = method(g_kinds[k], 0, g_groups[k], 0.0);
        EXPECT_STATUS(quant_quantize(&m, NULL, g_w, R, C, NULL, &g_weights[k]), QUANT_OK);
    }
    quant_method def = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    EXPECT_STATUS(quant_config_new(&def, &g_config), QUANT_OK);
    quant_method q4 = method(QUANT_INT4_ASYMMETRIC, 0, 64, 0.0);
    quant_method fp8 = method(QUANT_FP8_E4M3, 0, 0, 0.0);
    quant_method bad = method(QUANT_AWQ, 4, 0, 0.0);
    EXPECT_STATUS(quant_config_set_layer(g_config, "q_proj", &q4), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(g_config, "lm_head", &fp8), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(g_config, "bad", &bad), QUANT_OK);
    fill_matrix(g_x, T * C, 11);
    EXPECT_STATUS(quant_options_new(&g_options), QUANT_OK);
    EXPECT_STATUS(quant_options_set_act_order(g_options, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(g_options, 2), QUANT_OK);
    EXPECT_STATUS(quant_calib_new(C, &g_calib), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(g_calib, g_x, T / 2, C), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(g_calib, g_x + (T / 2) * C, T / 2, C), QUANT_OK);
    for (int k = 0; k < 3; k++) {
        quant_method m = method(g_algo_kinds[k], 4, 16, 0.5);
        EXPECT_STATUS(quant_quantize(&m, g_options, g_w, R, C, g_calib, &g_algo[k]), QUANT_OK);
    }

    /* The single-threaded reference (id 3: the ids only change error paths). */
    struct job ref;
    memset(&ref, 0, sizeof ref);
    ref.id = 3;
    worker(&ref);
    CHECK(ref.failures == 0);
    if (ref.failures) fprintf(stderr, "single-threaded run: %s\n", ref.first_failure);

    struct job jobs[NTHREADS];
    pthread_t threads[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].id = t + 1;
        CHECK(pthread_create(&threads[t], NULL, worker, &jobs[t]) == 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        CHECK(jobs[t].failures == 0);
        if (jobs[t].failures)
            fprintf(stderr, "thread %d: %d failures, first: %s\n", t, jobs[t].failures, jobs[t].first_failure);
        CHECK(jobs[t].result == ref.result);
    }

    for (int k = 0; k < 3; k++) quant_weight_free(g_weights[k]);
    for (int k = 0; k < 3; k++) quant_weight_free(g_algo[k]);
    quant_calib_free(g_calib);
    quant_options_free(g_options);
    EXPECT_STATUS(quant_set_simd_level(QUANT_SIMD_AUTO), QUANT_OK);
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
    quant_config_free(g_config);
    END();
}
