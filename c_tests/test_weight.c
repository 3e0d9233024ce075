/* Whole-layer quantization and the quantized weight handle: quant_quantize, quant_quantize_group and
 * every quant_weight_* export, on success and on each error path, plus a real MiniLM layer. */
#include <stdint.h>

#include "harness.h"

static quant_method method(quant_method_kind kind, uint32_t bits, uint32_t group, double alpha) {
    quant_method m;
    m.kind = kind;
    m.bits = bits;
    m.group_size = group;
    m.alpha = alpha;
    return m;
}

/* A deterministic matrix with values in about [-0.4, 0.4]. */
static void fill_matrix(float *w, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * 0.8f;
    }
}

/* A handle value that no successful call returns: out-parameters are checked against it. */
#define HANDLE_SENTINEL ((quant_weight *)(uintptr_t)0xA5A5A5A5u)

static size_t detail_len(void) { return quant_last_error(NULL, 0); }

/* A successful status-returning call clears this thread's detail. */
static void clear_detail(void) {
    quant_method ok = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    (void)quant_method_validate(&ok);
}

static void test_int8(void) {
    enum { R = 4, C = 8, N = R * C };
    float w[N];
    fill_matrix(w, N, 1);
    quant_method m = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    quant_weight *q = NULL;
    EXPECT_STATUS(quant_quantize(&m, NULL, w, R, C, NULL, &q), QUANT_OK);
    CHECK(q != NULL);

    size_t rows = 0, cols = 0;
    EXPECT_STATUS(quant_weight_shape(q, &rows, &cols), QUANT_OK);
    CHECK(rows == R && cols == C);
    quant_method got;
    EXPECT_STATUS(quant_weight_method(q, &got), QUANT_OK);
    CHECK(got.kind == QUANT_INT8_SYMMETRIC && got.bits == 8 && got.group_size == 0 && got.alpha == 0.0);

    size_t len = 77;
    const uint8_t *data = quant_weight_data(q, &len);
    CHECK(data != NULL && len == N);
    CHECK(quant_weight_data(q, NULL) == data); /* len may be NULL */
    const float *scales = quant_weight_scales(q, &len);
    CHECK(scales != NULL && len == R);
    len = 77;
    CHECK(quant_weight_zero_points(q, &len) == NULL && len == 0);
    len = 77;
    CHECK(quant_weight_input_scales(q, &len) == NULL && len == 0);
    len = 77;
    CHECK(quant_weight_group_index(q, &len) == NULL && len == 0);
    CHECK(quant_weight_zero_points(q, NULL) == NULL);

    /* Dequantized: within half a step, and equal to the kernel's dequantizer bit for bit. */
    float deq[N], kernel[N];
    EXPECT_STATUS(quant_weight_dequantize(q, deq, N), QUANT_OK);
    EXPECT_STATUS(quant_int8_dequantize((const int8_t *)data, scales, R, C, 0, kernel, N), QUANT_OK);
    CHECK(memcmp(deq, kernel, sizeof deq) == 0);
    for (size_t i = 0; i < N; i++) {
        CHECK(fabsf(w[i] - deq[i]) <= scales[i / C] / 2.0f * 1.000001f);
        CHECK((int8_t)data[i] >= -127);
    }

    /* A larger buffer: only the prefix is written. */
    float big[N + 1];
    FILL(big, sizeof big);
    EXPECT_STATUS(quant_weight_dequantize(q, big, N + 1), QUANT_OK);
    CHECK(UNTOUCHED(&big[N], sizeof big[N]));

    /* Dequantize errors: one element too small, NULL dst, NULL q; dst untouched. */
    float small[N];
    FILL(small, sizeof small);
    EXPECT_STATUS(quant_weight_dequantize(q, small, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(UNTOUCHED(small, sizeof small));
    EXPECT_STATUS(quant_weight_dequantize(q, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_dequantize(q, NULL, 0), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_dequantize(NULL, small, N), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(small, sizeof small));

    /* Shape and method errors: outputs untouched. */
    size_t a, b;
    FILL(&a, sizeof a);
    FILL(&b, sizeof b);
    EXPECT_STATUS(quant_weight_shape(NULL, &a, &b), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_shape(q, NULL, &b), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_shape(q, &a, NULL), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
    quant_method mm;
    FILL(&mm, sizeof mm);
    EXPECT_STATUS(quant_weight_method(NULL, &mm), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(&mm, sizeof mm));
    EXPECT_STATUS(quant_weight_method(q, NULL), QUANT_ERR_NULL_POINTER);

    quant_weight_free(q);
}

static void test_int4(void) {
    enum { R = 3, C = 10, G = 4, GPR = 3, N = R * C };
    float w[N];
    fill_matrix(w, N, 2);
    quant_method m = method(QUANT_INT4_ASYMMETRIC, 0, G, 0.0);
    quant_weight *q = NULL;
    EXPECT_STATUS(quant_quantize(&m, NULL, w, R, C, NULL, &q), QUANT_OK);
    quant_method got;
    EXPECT_STATUS(quant_weight_method(q, &got), QUANT_OK);
    CHECK(got.kind == QUANT_INT4_ASYMMETRIC && got.bits == 4 && got.group_size == G);

    size_t len = 0;
    const uint8_t *data = quant_weight_data(q, &len);
    CHECK(data != NULL && len == quant_int4_packed_size(R, C) && len == R * 5);
    const float *scales = quant_weight_scales(q, &len);
    CHECK(scales != NULL && len == R * GPR && len == quant_scale_count(R, C, G));
    const float *zeros = quant_weight_zero_points(q, &len);
    CHECK(zeros != NULL && len == R * GPR);
    uint8_t zeros_u8[R * GPR];
    for (size_t i = 0; i < R * GPR; i++) {
        CHECK(zeros[i] >= 0.0f && zeros[i] <= 15.0f && zeros[i] == floorf(zeros[i]));
        zeros_u8[i] = (uint8_t)zeros[i];
    }
    float deq[N], kernel[N];
    EXPECT_STATUS(quant_weight_dequantize(q, deq, N), QUANT_OK);
    EXPECT_STATUS(quant_int4_dequantize(data, scales, zeros_u8, R, C, G, kernel, N), QUANT_OK);
    CHECK(memcmp(deq, kernel, sizeof deq) == 0);
    for (size_t i = 0; i < N; i++) {
        float s = scales[(i / C) * GPR + (i % C) / G];
        CHECK(fabsf(w[i] - deq[i]) <= s * 1.000001f);
    }
    quant_weight_free(q);
}

static void test_fp8_per_tensor(void) {
    enum { N = 64 };
    float w[N];
    fill_matrix(w, N, 3);
    w[17] = 3.5f; /* the absmax maps onto 448 */
    quant_method m = method(QUANT_FP8_E4M3, 0, 0, 0.0);
    quant_weight *q = NULL;
    EXPECT_STATUS(quant_quantize(&m, NULL, w, 1, N, NULL, &q), QUANT_OK);
    size_t len = 0;
    const uint8_t *data = quant_weight_data(q, &len);
    CHECK(data != NULL && len == N);
    const float *scales = quant_weight_scales(q, &len);
    CHECK(scales != NULL && len == 1 && scales[0] == 3.5f / 448.0f);
    CHECK(data[17] == 0x7E); /* +448 */
    len = 5;
    CHECK(quant_weight_zero_points(q, &len) == NULL && len == 0);
    float deq[N];
    EXPECT_STATUS(quant_weight_dequantize(q, deq, N), QUANT_OK);
    CHECK(deq[17] == 3.5f);
    for (size_t i = 0; i < N; i++) CHECK(fabsf(w[i] - deq[i]) <= fabsf(w[i]) / 16.0f + 1e-4f);
    quant_weight_free(q);
}

static void test_quantize_errors(void) {
    enum { R = 2, C = 8, N = R * C };
    float w[N];
    fill_matrix(w, N, 4);
    quant_method int8 = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    quant_weight *out = HANDLE_SENTINEL;

    EXPECT_STATUS(quant_quantize(NULL, NULL, w, R, C, NULL, &out), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize(&int8, NULL, NULL, R, C, NULL, &out), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("w is NULL");
    EXPECT_STATUS(quant_quantize(&int8, NULL, w, R, C, NULL, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize(&int8, NULL, w, 0, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize(&int8, NULL, w, R, 0, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize(&int8, NULL, w, SIZE_MAX / 2, 3, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize(&int8, NULL, w, (size_t)1 << 62, 4, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT);

    quant_method unknown = method(6, 0, 0, 0.0);
    EXPECT_STATUS(quant_quantize(&unknown, NULL, w, R, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("unknown quantization method kind 6");
    quant_method bad_group = method(QUANT_GPTQ, 4, 0, 0.0);
    EXPECT_STATUS(quant_quantize(&bad_group, NULL, w, R, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("group_size");
    quant_method bad_awq = method(QUANT_AWQ, 4, 0, 0.0);
    EXPECT_STATUS(quant_quantize(&bad_awq, NULL, w, R, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    quant_method bad_alpha = method(QUANT_SMOOTHQUANT, 0, 0, NAN);
    EXPECT_STATUS(quant_quantize(&bad_alpha, NULL, w, R, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("alpha");

    /* NaN / infinity in the weight: NON_FINITE naming the first index, for every round-to-nearest kind. */
    const quant_method_kind rtn[3] = {QUANT_INT8_SYMMETRIC, QUANT_INT4_ASYMMETRIC, QUANT_FP8_E4M3};
    for (int k = 0; k < 3; k++) {
        quant_method m = method(rtn[k], 0, 4, 0.0);
        float bad[N];
        memcpy(bad, w, sizeof bad);
        bad[5] = NAN;
        bad[9] = INFINITY;
        EXPECT_STATUS(quant_quantize(&m, NULL, bad, R, C, NULL, &out), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("w[5]");
        bad[5] = -INFINITY;
        EXPECT_STATUS(quant_quantize(&m, NULL, bad, R, C, NULL, &out), QUANT_ERR_NON_FINITE);
    }

    /* The calibration-based kinds need calib: NULL is INVALID_ARGUMENT. */
    const quant_method calibrated[3] = {method(QUANT_AWQ, 4, 4, 0.0), method(QUANT_SMOOTHQUANT, 0, 0, 0.5),
                                        method(QUANT_GPTQ, 4, 4, 0.0)};
    for (int k = 0; k < 3; k++) {
        EXPECT_STATUS(quant_quantize(&calibrated[k], NULL, w, R, C, NULL, &out),
                      QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("calib is NULL");
    }
    CHECK(out == HANDLE_SENTINEL);
}

static void test_accessors_on_null(void) {
    size_t len = 77;
    clear_detail();
    CHECK(quant_weight_data(NULL, &len) == NULL && len == 0);
    CHECK(detail_len() > 0);
    len = 77;
    clear_detail();
    CHECK(quant_weight_scales(NULL, &len) == NULL && len == 0);
    CHECK(detail_len() > 0);
    len = 77;
    clear_detail();
    CHECK(quant_weight_zero_points(NULL, &len) == NULL && len == 0);
    CHECK(detail_len() > 0);
    len = 77;
    clear_detail();
    CHECK(quant_weight_input_scales(NULL, &len) == NULL && len == 0);
    CHECK(detail_len() > 0);
    len = 77;
    clear_detail();
    CHECK(quant_weight_group_index(NULL, &len) == NULL && len == 0);
    EXPECT_DETAIL_CONTAINS("q is NULL");
    CHECK(quant_weight_data(NULL, NULL) == NULL);
    quant_weight_free(NULL);
}

static void test_group(void) {
    enum { C = 16 };
    float a[3 * C], b[5 * C], c[1 * C];
    fill_matrix(a, 3 * C, 5);
    fill_matrix(b, 5 * C, 6);
    fill_matrix(c, 1 * C, 7);
    const float *ws[3] = {a, b, c};
    size_t rows[3] = {3, 5, 1};
    quant_method int4 = method(QUANT_INT4_ASYMMETRIC, 0, 8, 0.0);

    quant_weight *out[3] = {NULL, NULL, NULL};
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, rows, 3, C, NULL, out), QUANT_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(out[i] != NULL);
        size_t r = 0, cc = 0;
        EXPECT_STATUS(quant_weight_shape(out[i], &r, &cc), QUANT_OK);
        CHECK(r == rows[i] && cc == C);
        /* Each matrix on its own: the same as quant_quantize. */
        quant_weight *single = NULL;
        EXPECT_STATUS(quant_quantize(&int4, NULL, ws[i], rows[i], C, NULL, &single), QUANT_OK);
        size_t l1 = 0, l2 = 0;
        const uint8_t *d1 = quant_weight_data(out[i], &l1);
        const uint8_t *d2 = quant_weight_data(single, &l2);
        CHECK(l1 == l2 && memcmp(d1, d2, l1) == 0);
        const float *s1 = quant_weight_scales(out[i], &l1);
        const float *s2 = quant_weight_scales(single, &l2);
        CHECK(l1 == l2 && memcmp(s1, s2, l1 * sizeof(float)) == 0);
        quant_weight_free(single);
        quant_weight_free(out[i]);
    }

    /* Errors: all or nothing, out untouched. */
    quant_weight *sent[3] = {HANDLE_SENTINEL, HANDLE_SENTINEL, HANDLE_SENTINEL};
#define SENT_OK (sent[0] == HANDLE_SENTINEL && sent[1] == HANDLE_SENTINEL && sent[2] == HANDLE_SENTINEL)
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, rows, 0, C, NULL, sent), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("n is 0");
    EXPECT_STATUS(quant_quantize_group(NULL, NULL, ws, rows, 3, C, NULL, sent), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, NULL, rows, 3, C, NULL, sent), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, NULL, 3, C, NULL, sent), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, rows, 3, C, NULL, NULL), QUANT_ERR_NULL_POINTER);
    const float *with_null[3] = {a, NULL, c};
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, with_null, rows, 3, C, NULL, sent),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("ws[1]");
    size_t bad_rows[3] = {3, 0, 1};
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, bad_rows, 3, C, NULL, sent),
                  QUANT_ERR_INVALID_ARGUMENT);
    size_t huge_rows[3] = {3, SIZE_MAX / 4, 1};
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, huge_rows, 3, C, NULL, sent),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws, rows, 3, 0, NULL, sent), QUANT_ERR_INVALID_ARGUMENT);
    /* NaN in the LAST matrix: the first two were fine, yet no handle is written and none leaks. */
    float c_bad[C];
    memcpy(c_bad, c, sizeof c_bad);
    c_bad[3] = NAN;
    const float *ws_bad[3] = {a, b, c_bad};
    EXPECT_STATUS(quant_quantize_group(&int4, NULL, ws_bad, rows, 3, C, NULL, sent), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("ws[2][3]");
    quant_method unknown = method(-1, 0, 0, 0.0);
    EXPECT_STATUS(quant_quantize_group(&unknown, NULL, ws, rows, 3, C, NULL, sent),
                  QUANT_ERR_INVALID_ARGUMENT);
    quant_method awq = method(QUANT_AWQ, 4, 8, 0.0);
    EXPECT_STATUS(quant_quantize_group(&awq, NULL, ws, rows, 3, C, NULL, sent), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("calib is NULL");
    CHECK(SENT_OK);
#undef SENT_OK
}

/* Real data: INT8 per channel on MiniLM layer 0's query weight stays within scale/2 of the original. */
static void test_real_layer(void) {
    enum { R = 384, C = 384, N = R * C };
    const char *path = QUANT_TEST_DATA_DIR "/minilm/encoder.layer.0.attention.self.query.weight.f32";
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return;
    }
    float *w = malloc(N * sizeof *w);
    float *deq = malloc(N * sizeof *deq);
    CHECK(w != NULL && deq != NULL);
    size_t got = fread(w, sizeof *w, N, f);
    fclose(f);
    CHECK(got == N);
    if (got == N) {
        quant_method m = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
        quant_weight *q = NULL;
        EXPECT_STATUS(quant_quantize(&m, NULL, w, R, C, NULL, &q), QUANT_OK);
        size_t len = 0;
        const float *scales = quant_weight_scales(q, &len);
        CHECK(len == R);
        EXPECT_STATUS(quant_weight_dequantize(q, deq, N), QUANT_OK);
        size_t bad = 0;
        double err2 = 0.0, ref2 = 0.0;
        for (size_t i = 0; i < N; i++) {
            float d = fabsf(w[i] - deq[i]);
            if (d > scales[i / C] / 2.0f * 1.000001f) bad++;
            err2 += (double)d * d;
            ref2 += (double)w[i] * w[i];
        }
        CHECK(bad == 0);
        /* And the error is small overall: well under 0.1% of the weight's energy. */
        CHECK(err2 / ref2 < 1e-3);
        /* Each row's absmax element maps onto +-127 exactly. */
        const uint8_t *data = quant_weight_data(q, &len);
        for (size_t r = 0; r < R; r++) {
            int has_max = 0;
            for (size_t c = 0; c < C; c++) {
                int8_t code = (int8_t)data[r * C + c];
                if (code == 127 || code == -127) has_max = 1;
            }
            CHECK(has_max);
        }
        quant_weight_free(q);
    }
    free(w);
    free(deq);
}

int main(void) {
    test_int8();
    test_int4();
    test_fp8_per_tensor();
    test_quantize_errors();
    test_accessors_on_null();
    test_group();
    test_real_layer();
    END();
}
