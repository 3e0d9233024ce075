/* bitsandbytes NF4 / FP4 (quant_bnb4_*): the bitsandbytes fixtures of tests/data/bnb4 through the C ABI
 * (f32, bf16 and f16 sources, quantize and dequantize, with plain and double-quantized statistics), the
 * size queries, the offset rule, and every error path. */
#include <float.h>
#include <stdint.h>

#include "harness.h"

/* Reads the bitsandbytes fixture tests/data/bnb4/<name>.<part>.<suffix>: the input
 * (part "in", suffix its element type) or one of a code book's results (part "nf4" or "fp4"). */
static void *read_bnb4(const char *name, const char *part, const char *suffix, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "bnb4/%s.%s.%s", name, part, suffix);
    return read_fixture(path, len);
}

/* Decoded values equal bitsandbytes' bit for bit, except that FP4 code 8 is -0.0 here and either
 * zero there (bitsandbytes' native kernel and its table fallback disagree on its sign). */
static int same_decoded(const float *got, const float *want, const uint8_t *codes, size_t n, int32_t ty) {
    for (size_t i = 0; i < n; i++) {
        unsigned code = (codes[i / 2] >> (i % 2 ? 0 : 4)) & 15u;
        if (ty == QUANT_BNB4_FP4 && code == 8) {
            if (!(got[i] == 0.0f && signbit(got[i]) && want[i] == 0.0f)) return 0;
        } else if (memcmp(&got[i], &want[i], 4) != 0) {
            return 0;
        }
    }
    return 1;
}

static void check_case(const char *name, int32_t dtype, const char *ext, size_t n, size_t bs, int32_t ty) {
    const char *t = ty == QUANT_BNB4_NF4 ? "nf4" : "fp4";
    size_t in_len, c_len, a_len, d_len;
    void *in = read_bnb4(name, "in", ext, &in_len);
    uint8_t *codes = (uint8_t *)read_bnb4(name, t, "codes.u8", &c_len);
    float *absmax = (float *)read_bnb4(name, t, "absmax.f32", &a_len);
    float *deq = (float *)read_bnb4(name, t, "deq.f32", &d_len);
    CHECK(in && codes && absmax && deq);
    if (!(in && codes && absmax && deq)) {
        free(in), free(codes), free(absmax), free(deq);
        return;
    }
    size_t nq = quant_bnb4_packed_size(n), na = quant_bnb4_absmax_count(n, bs);
    CHECK(nq == c_len && na * 4 == a_len && n * 4 == d_len);
    uint8_t *q = (uint8_t *)malloc(nq + 1);
    float *a = (float *)malloc((na + 1) * 4);
    float *d = (float *)malloc((n + 1) * 4);
    q[nq] = 0x5A;
    a[na] = 9.0f;
    d[n] = 7.0f;
    if (dtype == QUANT_DTYPE_F32) {
        EXPECT_STATUS(quant_bnb4_quantize(ty, (const float *)in, n, bs, q, nq + 1, a, na + 1), QUANT_OK);
        CHECK(memcmp(q, codes, nq) == 0 && memcmp(a, absmax, na * 4) == 0);
        memset(q, 0, nq);
    }
    EXPECT_STATUS(quant_bnb4_quantize_ex(ty, dtype, in, n, bs, q, nq + 1, a, na + 1), QUANT_OK);
    CHECK(memcmp(q, codes, nq) == 0);
    CHECK(memcmp(a, absmax, na * 4) == 0);
    CHECK(q[nq] == 0x5A && a[na] == 9.0f);
    EXPECT_STATUS(quant_bnb4_dequantize(ty, q, a, n, bs, d, n + 1), QUANT_OK);
    CHECK(same_decoded(d, deq, q, n, ty));
    CHECK(d[n] == 7.0f);
    free(in), free(codes), free(absmax), free(deq), free(q), free(a), free(d);
}

/* Double quantization: given bitsandbytes' offset, the codes, 8-bit absmax codes, absmax2, recovered
 * absmax and decoded values equal bitsandbytes'; with the library's offset (NULL), the offset is
 * quant_bnb4_absmax_mean of the plain absmax values. */
static void check_nested(const char *name, int32_t dtype, const char *ext, size_t n, size_t bs, int32_t ty) {
    const char *t = ty == QUANT_BNB4_NF4 ? "nf4" : "fp4";
    size_t in_len, c_len, a_len, qa_len, a2_len, d_len, o_len;
    void *in = read_bnb4(name, "in", ext, &in_len);
    uint8_t *codes = (uint8_t *)read_bnb4(name, t, "codes.u8", &c_len);
    float *absmax = (float *)read_bnb4(name, t, "absmax.f32", &a_len);
    uint8_t *qabsmax = (uint8_t *)read_bnb4(name, t, "nested.qabsmax.u8", &qa_len);
    float *absmax2 = (float *)read_bnb4(name, t, "nested.absmax2.f32", &a2_len);
    float *deq = (float *)read_bnb4(name, t, "nested.deq.f32", &d_len);
    float *offset = (float *)read_bnb4(name, t, "nested.offset.f32", &o_len);
    int ok = in && codes && absmax && qabsmax && absmax2 && deq && offset;
    CHECK(ok);
    size_t nq = quant_bnb4_packed_size(n), na = quant_bnb4_absmax_count(n, bs), n2 = quant_bnb4_nested_count(n, bs);
    ok = ok && nq == c_len && na == qa_len && na * 4 == a_len && n2 * 4 == a2_len && n * 4 == d_len && o_len == 4;
    CHECK(ok);
    if (!ok) {
        free(in), free(codes), free(absmax), free(qabsmax), free(absmax2), free(deq), free(offset);
        return;
    }
    uint8_t *q = (uint8_t *)malloc(nq + 1), *qa = (uint8_t *)malloc(na + 1);
    float *a2 = (float *)malloc((n2 + 1) * 4), *rec = (float *)malloc((na + 1) * 4), *d = (float *)malloc((n + 1) * 4);
    q[nq] = 0x5A, qa[na] = 0x5A, a2[n2] = 9.0f, rec[na] = 8.0f, d[n] = 7.0f;
    float used = 0.0f;
    EXPECT_STATUS(quant_bnb4_quantize_nested(ty, dtype, in, n, bs, offset, q, nq + 1, qa, na + 1, a2, n2 + 1, &used),
                  QUANT_OK);
    CHECK(memcmp(&used, offset, 4) == 0);
    CHECK(memcmp(q, codes, nq) == 0 && memcmp(qa, qabsmax, na) == 0 && memcmp(a2, absmax2, n2 * 4) == 0);
    CHECK(q[nq] == 0x5A && qa[na] == 0x5A && a2[n2] == 9.0f);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(ty, q, qa, a2, used, n, bs, d, n + 1), QUANT_OK);
    CHECK(same_decoded(d, deq, q, n, ty) && d[n] == 7.0f);
    /* The recovered absmax decode, through quant_bnb4_dequantize, to the same values. */
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, used, na, rec, na + 1), QUANT_OK);
    CHECK(rec[na] == 8.0f);
    memset(d, 0, n * 4);
    EXPECT_STATUS(quant_bnb4_dequantize(ty, q, rec, n, bs, d, n), QUANT_OK);
    CHECK(same_decoded(d, deq, q, n, ty));
    /* The library's offset: the mean rule of the plain absmax values. */
    float mean = 0.0f;
    EXPECT_STATUS(quant_bnb4_absmax_mean(absmax, na, &mean), QUANT_OK);
    EXPECT_STATUS(quant_bnb4_quantize_nested(ty, dtype, in, n, bs, NULL, q, nq, qa, na, a2, n2, &used), QUANT_OK);
    CHECK(memcmp(&used, &mean, 4) == 0 && memcmp(q, codes, nq) == 0);
    CHECK(fabsf(mean - *offset) <= 1e-6f * fabsf(mean));
    free(in), free(codes), free(absmax), free(qabsmax), free(absmax2), free(deq), free(offset);
    free(q), free(qa), free(a2), free(rec), free(d);
}

static void test_fixtures(void) {
    CHECK(QUANT_BNB4_FP4 == 1 && QUANT_BNB4_NF4 == 2 && QUANT_BNB4_DEFAULT_BLOCKSIZE == 64);
    for (int k = 0; k < 2; k++) {
        int32_t ty = k ? QUANT_BNB4_FP4 : QUANT_BNB4_NF4;
        check_case("wide_bs64", QUANT_DTYPE_F32, "f32", 231, 64, ty);
        check_case("wide_bs4096", QUANT_DTYPE_F32, "f32", 14343, 4096, ty);
        check_case("zeros", QUANT_DTYPE_F32, "f32", 266, 64, ty);
        check_case("odd_101", QUANT_DTYPE_F32, "f32", 101, 32, ty);
        check_case("bf16_1000", QUANT_DTYPE_BF16, "bf16", 1000, 64, ty);
        check_case("f16_777", QUANT_DTYPE_F16, "f16", 777, 128, ty);
    }
    for (int k = 0; k < 2; k++) {
        int32_t ty = k ? QUANT_BNB4_FP4 : QUANT_BNB4_NF4;
        check_nested("nested_3blocks", QUANT_DTYPE_F32, "f32", 35141, 64, ty);
        check_nested("nested_equal", QUANT_DTYPE_F32, "f32", 19200, 64, ty);
        check_nested("wide_bs32", QUANT_DTYPE_F32, "f32", 119, 32, ty);
        check_nested("bf16_1000", QUANT_DTYPE_BF16, "bf16", 1000, 64, ty);
        check_nested("f16_777", QUANT_DTYPE_F16, "f16", 777, 128, ty);
    }
    check_case("ties_nf4", QUANT_DTYPE_F32, "f32", 66, 64, QUANT_BNB4_NF4);
    check_case("ties_fp4", QUANT_DTYPE_F32, "f32", 66, 64, QUANT_BNB4_FP4);
}

static void test_sizes(void) {
    CHECK(quant_bnb4_packed_size(1) == 1 && quant_bnb4_packed_size(64) == 32 && quant_bnb4_packed_size(65) == 33);
    CHECK(quant_bnb4_packed_size(0) == 0 && quant_last_error(NULL, 0) > 0);
    CHECK(quant_bnb4_absmax_count(65, 64) == 2 && quant_bnb4_absmax_count(4096, 4096) == 1);
    CHECK(quant_bnb4_absmax_count(65, 48) == 0 && quant_last_error(NULL, 0) > 0);
    CHECK(quant_bnb4_absmax_count(65, 16) == 0 && quant_bnb4_absmax_count(65, 8192) == 0);
    CHECK(quant_bnb4_absmax_count(0, 64) == 0);
    CHECK(QUANT_BNB4_NESTED_BLOCKSIZE == 256);
    CHECK(quant_bnb4_nested_count(1, 64) == 1 && quant_bnb4_nested_count(64 * 256, 64) == 1);
    CHECK(quant_bnb4_nested_count(64 * 256 + 1, 64) == 2 && quant_bnb4_nested_count(4096 * 513, 4096) == 3);
    CHECK(quant_bnb4_nested_count(0, 64) == 0 && quant_last_error(NULL, 0) > 0);
    CHECK(quant_bnb4_nested_count(65, 100) == 0 && quant_last_error(NULL, 0) > 0);
}

/* The nested entry points' errors: argument errors write nothing, value errors zero-fill. */
static void test_nested_errors(void) {
    enum { M = 64 * 300 + 5, MQ = (M + 1) / 2, MA = 301, M2 = 2 };
    static float x[M], d[M], a2[M2 + 1], rec[MA], mean_in[3];
    static uint8_t q[MQ], qa[MA];
    for (size_t i = 0; i < M; i++) x[i] = (float)((int)(i % 101) - 50) * 0.01f * (float)(1 + i % 7);
    const int32_t nf4 = QUANT_BNB4_NF4, f32 = QUANT_DTYPE_F32;
    float off = 0.25f, used = -5.0f, mean = -5.0f;
    CHECK(quant_bnb4_absmax_count(M, 64) == MA && quant_bnb4_nested_count(M, 64) == M2);
    FILL(q, sizeof q), FILL(qa, sizeof qa), FILL(a2, sizeof a2);
    EXPECT_STATUS(quant_bnb4_quantize_nested(0, f32, x, M, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, 9, x, M, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, QUANT_DTYPE_F16, (const char *)x + 1, M, 64, NULL, q, MQ, qa, MA,
                                             a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, 0, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, SIZE_MAX, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 96, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    float bad = NAN;
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, &bad, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("offset");
    bad = -INFINITY;
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, &bad, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, NULL, M, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, NULL, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, NULL, MA, a2, M2, &used),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, qa, MA, NULL, M2, &used),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, qa, MA, a2, M2, NULL),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ - 1, qa, MA, a2, M2, &used),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, qa, MA - 1, a2, M2, &used),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, qa, MA, a2, M2 - 1, &used),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, NULL, 0, a2, M2, &used),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(UNTOUCHED(q, sizeof q) && UNTOUCHED(qa, sizeof qa) && UNTOUCHED(a2, sizeof a2) && used == -5.0f);

    /* Value errors: the prefixes zero-filled, offset_out not written. */
    x[4321] = INFINITY;
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, NULL, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("4321");
    CHECK(ZEROED(q, sizeof q) && ZEROED(qa, sizeof qa) && ZEROED(a2, M2 * 4) && UNTOUCHED(&a2[M2], 4));
    CHECK(used == -5.0f);
    x[4321] = 3e38f;
    float huge = -FLT_MAX;
    FILL(q, sizeof q);
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, &huge, q, MQ, qa, MA, a2, M2, &used),
                  QUANT_ERR_NON_FINITE);
    CHECK(ZEROED(q, sizeof q) && used == -5.0f);
    x[4321] = 0.5f;

    /* Success with a given offset: absmax - 0.25 coded. */
    EXPECT_STATUS(quant_bnb4_quantize_nested(nf4, f32, x, M, 64, &off, q, MQ, qa, MA, a2, M2, &used), QUANT_OK);
    CHECK(used == 0.25f && a2[0] > 0.0f && a2[1] > 0.0f);

    /* quant_bnb4_absmax_mean. */
    mean_in[0] = 1.0f, mean_in[1] = 2.0f, mean_in[2] = 4.0f;
    EXPECT_STATUS(quant_bnb4_absmax_mean(mean_in, 3, &mean), QUANT_OK);
    CHECK(mean == (float)(7.0 / 3.0));
    mean = -5.0f;
    EXPECT_STATUS(quant_bnb4_absmax_mean(mean_in, 0, &mean), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_absmax_mean(NULL, 3, &mean), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_absmax_mean(mean_in, 3, NULL), QUANT_ERR_NULL_POINTER);
    mean_in[1] = NAN;
    EXPECT_STATUS(quant_bnb4_absmax_mean(mean_in, 3, &mean), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("1");
    CHECK(mean == -5.0f);

    /* quant_bnb4_nested_absmax. */
    FILL(rec, sizeof rec);
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, 0.25f, 0, rec, MA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, NAN, MA, rec, MA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_nested_absmax(NULL, a2, 0.25f, MA, rec, MA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, NULL, 0.25f, MA, rec, MA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, 0.25f, MA, NULL, MA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, 0.25f, MA, rec, MA - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    float keep = a2[1];
    a2[1] = NAN;
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, 0.25f, MA, rec, MA), QUANT_ERR_NON_FINITE);
    CHECK(UNTOUCHED(rec, sizeof rec));
    a2[1] = keep;
    EXPECT_STATUS(quant_bnb4_nested_absmax(qa, a2, 0.25f, MA, rec, MA), QUANT_OK);
    CHECK(rec[0] > 0.0f && rec[MA - 1] > 0.0f);

    /* quant_bnb4_dequantize_nested. */
    FILL(d, sizeof d);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(5, q, qa, a2, 0.25f, M, 64, d, M), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, 0, 64, d, M), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, M, 63, d, M), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, INFINITY, M, 64, d, M), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, NULL, qa, a2, 0.25f, M, 64, d, M), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, NULL, a2, 0.25f, M, 64, d, M), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, NULL, 0.25f, M, 64, d, M), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, M, 64, NULL, M), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, M, 64, d, M - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    a2[0] = INFINITY;
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, M, 64, d, M), QUANT_ERR_NON_FINITE);
    a2[0] = FLT_MAX;
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, FLT_MAX, M, 64, d, M), QUANT_ERR_NON_FINITE);
    CHECK(UNTOUCHED(d, sizeof d));
    a2[0] = keep;
    EXPECT_STATUS(quant_bnb4_dequantize_nested(nf4, q, qa, a2, 0.25f, M, 64, d, M), QUANT_OK);
    CHECK(!UNTOUCHED(d, 4) && !UNTOUCHED(&d[M - 1], 4));
}

enum { N = 1001, NQ = 501, NA = 16 };

static void test_errors(void) {
    static float x[N], d[N];
    static uint16_t h[N];
    static uint8_t q[NQ];
    static float a[NA];
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)((int)(i % 37) - 18) * 0.05f;
        h[i] = 0x3C00;
    }
    const int32_t nf4 = QUANT_BNB4_NF4;
    memset(q, 0xA5, sizeof q);
    memset(a, 0xA5, sizeof a);
    EXPECT_STATUS(quant_bnb4_quantize(0, x, N, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(3, x, N, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, 0, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 100, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 8192, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, SIZE_MAX, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, NULL, N, 64, q, NQ, a, NA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, NULL, NQ, a, NA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, q, NQ, NULL, NA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, q, NQ - 1, a, NA), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, q, NQ, a, NA - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, NULL, 0, a, NA), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_bnb4_quantize_ex(nf4, 3, h, N, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_ex(nf4, QUANT_DTYPE_BF16, (const char *)h + 1, N, 64, q, NQ, a, NA),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_quantize_ex(nf4, QUANT_DTYPE_F16, NULL, N, 64, q, NQ, a, NA), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_quantize_ex(7, QUANT_DTYPE_F16, h, N, 64, q, NQ, a, NA), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(harness_untouched(q, sizeof q, 0xA5) && harness_untouched(a, sizeof a, 0xA5));

    /* Value errors: the prefixes zero-filled, the first bad index named. */
    x[777] = NAN;
    x[900] = -INFINITY;
    EXPECT_STATUS(quant_bnb4_quantize(nf4, x, N, 64, q, NQ, a, NA), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("777");
    CHECK(harness_untouched(q, sizeof q, 0) && harness_untouched(a, sizeof a, 0));
    x[777] = 0.0f;
    x[900] = 0.0f;
    h[999] = 0xFC00; /* f16 -inf */
    memset(q, 0xA5, sizeof q);
    EXPECT_STATUS(quant_bnb4_quantize_ex(QUANT_BNB4_FP4, QUANT_DTYPE_F16, h, N, 64, q, NQ, a, NA),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("999");
    CHECK(harness_untouched(q, sizeof q, 0));
    h[999] = 0x3C00;
    /* f16 1.0 everywhere: absmax 1, NF4 code 15 (1.0), the pad nibble of odd n the code of 0.0 (7). */
    EXPECT_STATUS(quant_bnb4_quantize_ex(nf4, QUANT_DTYPE_F16, h, N, 64, q, NQ, a, NA), QUANT_OK);
    CHECK(q[0] == 0xFF && q[NQ - 1] == 0xF7 && a[0] == 1.0f && a[NA - 1] == 1.0f);

    memset(d, 0xA5, sizeof d);
    EXPECT_STATUS(quant_bnb4_dequantize(0, q, a, N, 64, d, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, 0, 64, d, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, N, 63, d, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, NULL, a, N, 64, d, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, NULL, N, 64, d, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, N, 64, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, N, 64, d, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    a[3] = INFINITY;
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, N, 64, d, N), QUANT_ERR_NON_FINITE);
    CHECK(harness_untouched(d, sizeof d, 0xA5));
    a[3] = 1.0f;
    EXPECT_STATUS(quant_bnb4_dequantize(nf4, q, a, N, 64, d, N), QUANT_OK);
    CHECK(d[0] == 1.0f && d[N - 1] == 1.0f);
}

int main(void) {
    test_fixtures();
    test_sizes();
    test_errors();
    test_nested_errors();
    END();
}
