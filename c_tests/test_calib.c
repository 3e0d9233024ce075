/* Calibration statistics and options: quant_calib_new, quant_calib_new_ex, quant_calib_add,
 * quant_calib_set_hessian, quant_calib_tokens, quant_calib_free, quant_options_new, quant_options_free
 * and every quant_options_set_*, on success and on each error path (statuses, details, untouched
 * outputs). */
#include <stdint.h>

#include "harness.h"

#define CALIB_SENTINEL ((quant_calib *)(uintptr_t)0xA5A5A5A5u)
#define OPTIONS_SENTINEL ((quant_options *)(uintptr_t)0xA5A5A5A5u)

static void fill(float *x, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 7u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * 4.0f;
    }
}

static void test_new_and_free(void) {
    quant_calib *c = CALIB_SENTINEL;
    EXPECT_STATUS(quant_calib_new(8, &c), QUANT_OK);
    CHECK(c != NULL && c != CALIB_SENTINEL);
    CHECK(quant_calib_tokens(c) == 0);
    quant_calib_free(c);
    quant_calib_free(NULL);

    EXPECT_STATUS(quant_calib_new(8, NULL), QUANT_ERR_NULL_POINTER);
    c = CALIB_SENTINEL;
    EXPECT_STATUS(quant_calib_new(0, &c), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(c == CALIB_SENTINEL);
    EXPECT_STATUS(quant_calib_new(SIZE_MAX, &c), QUANT_ERR_INVALID_ARGUMENT); /* cols^2 overflows */
    CHECK(c == CALIB_SENTINEL);
    /* A Hessian too large for memory is an error, not an abort. */
    EXPECT_STATUS(quant_calib_new((size_t)1 << 31, &c), QUANT_ERR_OUT_OF_MEMORY);
    CHECK(c == CALIB_SENTINEL);

    /* _ex: with and without the Hessian, with options. */
    quant_options *o = NULL;
    EXPECT_STATUS(quant_options_new(&o), QUANT_OK);
    EXPECT_STATUS(quant_options_set_sample_tokens(o, 3), QUANT_OK);
    EXPECT_STATUS(quant_calib_new_ex(8, 0, o, &c), QUANT_OK);
    CHECK(c != CALIB_SENTINEL);
    quant_calib_free(c);
    c = CALIB_SENTINEL;
    EXPECT_STATUS(quant_calib_new_ex(8, QUANT_CALIB_HESSIAN, NULL, &c), QUANT_OK);
    quant_calib_free(c);
    c = CALIB_SENTINEL;
    EXPECT_STATUS(quant_calib_new_ex(8, 2u, o, &c), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("QUANT_CALIB_HESSIAN");
    CHECK(c == CALIB_SENTINEL);
    EXPECT_STATUS(quant_calib_new_ex(0, 0, o, &c), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(c == CALIB_SENTINEL);
    EXPECT_STATUS(quant_calib_new_ex(8, 0, o, NULL), QUANT_ERR_NULL_POINTER);
    quant_options_free(o);
}

static void test_add(void) {
    enum { C = 6, N = 20 };
    float x[N * C];
    fill(x, N * C, 1);
    quant_calib *c = NULL;
    EXPECT_STATUS(quant_calib_new(C, &c), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(c, x, 5, C), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(c, x + 5 * C, N - 5, C), QUANT_OK);
    CHECK(quant_calib_tokens(c) == N);
    EXPECT_STATUS(quant_calib_add(c, NULL, 0, C), QUANT_OK); /* zero tokens: a no-op */
    CHECK(quant_calib_tokens(c) == N);

    EXPECT_STATUS(quant_calib_add(NULL, x, 1, C), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_calib_add(c, NULL, 1, C), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_calib_add(c, x, 1, C + 1), QUANT_ERR_SHAPE_MISMATCH);
    EXPECT_DETAIL_CONTAINS("width");
    EXPECT_STATUS(quant_calib_add(c, x, SIZE_MAX, C), QUANT_ERR_INVALID_ARGUMENT);
    float bad[2 * C];
    memcpy(bad, x, sizeof bad);
    bad[C + 2] = NAN;
    EXPECT_STATUS(quant_calib_add(c, bad, 2, C), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("x[8]");
    bad[C + 2] = -INFINITY;
    EXPECT_STATUS(quant_calib_add(c, bad, 2, C), QUANT_ERR_NON_FINITE);
    CHECK(quant_calib_tokens(c) == N); /* unchanged by every error */

    CHECK(quant_calib_tokens(NULL) == 0);
    CHECK(quant_last_error(NULL, 0) > 0);
    quant_calib_free(c);
}

static void test_set_hessian(void) {
    enum { C = 4 };
    double h[C * C];
    memset(h, 0, sizeof h);
    for (int i = 0; i < C; i++) h[i * C + i] = 2.0;
    quant_calib *c = NULL;
    EXPECT_STATUS(quant_calib_new_ex(C, 0, NULL, &c), QUANT_OK);
    EXPECT_STATUS(quant_calib_set_hessian(c, h, C * C, C, 10), QUANT_OK);
    EXPECT_STATUS(quant_calib_set_hessian(NULL, h, C * C, C, 10), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_calib_set_hessian(c, NULL, C * C, C, 10), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_calib_set_hessian(c, h, C * C, C + 1, 10), QUANT_ERR_SHAPE_MISMATCH);
    EXPECT_STATUS(quant_calib_set_hessian(c, h, C * C - 1, C, 10), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_calib_set_hessian(c, h, C * C, C, 0), QUANT_ERR_INVALID_ARGUMENT);
    h[5] = NAN;
    EXPECT_STATUS(quant_calib_set_hessian(c, h, C * C, C, 10), QUANT_ERR_NON_FINITE);
    CHECK(quant_calib_tokens(c) == 0); /* an imported Hessian does not count as added tokens */
    quant_calib_free(c);
}

static void test_options(void) {
    quant_options *o = OPTIONS_SENTINEL;
    EXPECT_STATUS(quant_options_new(&o), QUANT_OK);
    CHECK(o != NULL && o != OPTIONS_SENTINEL);
    EXPECT_STATUS(quant_options_new(NULL), QUANT_ERR_NULL_POINTER);

    EXPECT_STATUS(quant_options_set_act_order(o, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_symmetric(o, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_static_groups(o, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_mse_search(o, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_damp_percent(o, 0.05), QUANT_OK);
    EXPECT_STATUS(quant_options_set_block_size(o, 64), QUANT_OK);
    EXPECT_STATUS(quant_options_set_sample_tokens(o, 128), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 0), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 2), QUANT_OK);

    EXPECT_STATUS(quant_options_set_act_order(NULL, true), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_symmetric(NULL, true), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_static_groups(NULL, true), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_mse_search(NULL, true), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_damp_percent(NULL, 0.01), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_block_size(NULL, 1), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_sample_tokens(NULL, 1), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_options_set_threads(NULL, 1), QUANT_ERR_NULL_POINTER);

    const double bad_damp[] = {0.0, -0.01, 1.0, 2.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_damp / sizeof bad_damp[0]; i++) {
        EXPECT_STATUS(quant_options_set_damp_percent(o, bad_damp[i]), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("damp_percent");
    }
    EXPECT_STATUS(quant_options_set_block_size(o, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("block_size");
    EXPECT_STATUS(quant_options_set_sample_tokens(o, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("sample_tokens");
    EXPECT_STATUS(quant_options_set_threads(o, 4097), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("threads");

    /* The rejected sample size did not stick: a calibration made with these options keeps 128 tokens
     * and works (a rejected 0 would have been refused by quant_calib_new_ex). */
    quant_calib *c = NULL;
    EXPECT_STATUS(quant_calib_new_ex(4, 0, o, &c), QUANT_OK);
    quant_calib_free(c);
    quant_options_free(o);
    quant_options_free(NULL);
}

/* How many tokens each method should be fitted on: 0 for round-to-nearest, 16 * cols for GPTQ, 512 for
 * AWQ and SmoothQuant; errors leave the output unchanged. */
static void test_recommended_tokens(void) {
    uint64_t t = 0;
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_GPTQ, 512, &t), QUANT_OK);
    CHECK(t == 8192);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_GPTQ, 4096, &t), QUANT_OK);
    CHECK(t == 65536);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_AWQ, 4096, &t), QUANT_OK);
    CHECK(t == 512);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_SMOOTHQUANT, 64, &t), QUANT_OK);
    CHECK(t == 512);
    const quant_method_kind rtn[3] = {QUANT_INT8_SYMMETRIC, QUANT_INT4_ASYMMETRIC, QUANT_FP8_E4M3};
    for (int i = 0; i < 3; i++) {
        t = 99;
        EXPECT_STATUS(quant_calib_recommended_tokens(rtn[i], 4096, &t), QUANT_OK);
        CHECK(t == 0);
    }
    t = 7;
    EXPECT_STATUS(quant_calib_recommended_tokens(6, 64, &t), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("kind");
    EXPECT_STATUS(quant_calib_recommended_tokens(-1, 64, &t), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_GPTQ, 0, &t), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_GPTQ, 64, NULL), QUANT_ERR_NULL_POINTER);
    CHECK(t == 7);
    /* A calibration compares with it through quant_calib_tokens. */
    quant_calib *c = NULL;
    EXPECT_STATUS(quant_calib_new(8, &c), QUANT_OK);
    float x[8 * 4] = {0};
    EXPECT_STATUS(quant_calib_add(c, x, 4, 8), QUANT_OK);
    EXPECT_STATUS(quant_calib_recommended_tokens(QUANT_GPTQ, 8, &t), QUANT_OK);
    CHECK(quant_calib_tokens(c) == 4 && t == 128);
    quant_calib_free(c);
}

int main(void) {
    test_recommended_tokens();
    test_new_and_free();
    test_add();
    test_set_hessian();
    test_options();
    END();
}
