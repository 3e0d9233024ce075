/* bitsandbytes NF4 / FP4 (quant_bnb4_*): the bitsandbytes fixtures of tests/data/bnb4 through the C ABI
 * (f32, bf16 and f16 sources, quantize and dequantize), the size queries, and every error path. */
#include <stdint.h>

#include "harness.h"

static void *read_fixture(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/bnb4/%s", QUANT_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
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
    char fn[256];
    size_t in_len, c_len, a_len, d_len;
    snprintf(fn, sizeof fn, "%s.in.%s", name, ext);
    void *in = read_fixture(fn, &in_len);
    snprintf(fn, sizeof fn, "%s.%s.codes.u8", name, t);
    uint8_t *codes = (uint8_t *)read_fixture(fn, &c_len);
    snprintf(fn, sizeof fn, "%s.%s.absmax.f32", name, t);
    float *absmax = (float *)read_fixture(fn, &a_len);
    snprintf(fn, sizeof fn, "%s.%s.deq.f32", name, t);
    float *deq = (float *)read_fixture(fn, &d_len);
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
    END();
}
