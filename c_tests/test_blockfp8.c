/* Block-scaled FP8 E4M3 (quant_fp8_block_*): the torch fixtures of tests/data/blockfp8 through the C ABI
 * (f32, bf16 and f16 sources, quantize and dequantize), and every argument and value error path. */
#include <stdint.h>

#include "harness.h"

/* One fixture case: quantizes its input (of type dtype, file suffix ext) and compares every code,
 * scale_inv and decoded value with torch's. */
static void check_case(const char *name, int32_t dtype, const char *ext, size_t rows, size_t cols,
                       size_t br, size_t bc) {
    char fn[256];
    size_t in_len, c_len, s_len, d_len;
    snprintf(fn, sizeof fn, "blockfp8/%s.in.%s", name, ext);
    void *in = read_fixture(fn, &in_len);
    snprintf(fn, sizeof fn, "blockfp8/%s.codes.u8", name);
    uint8_t *codes = (uint8_t *)read_fixture(fn, &c_len);
    snprintf(fn, sizeof fn, "blockfp8/%s.scale_inv.f32", name);
    float *scale = (float *)read_fixture(fn, &s_len);
    snprintf(fn, sizeof fn, "blockfp8/%s.deq.f32", name);
    float *deq = (float *)read_fixture(fn, &d_len);
    CHECK(in && codes && scale && deq);
    if (!(in && codes && scale && deq)) {
        free(in), free(codes), free(scale), free(deq);
        return;
    }
    size_t n = rows * cols, nb = quant_fp8_block_scale_count(rows, cols, br, bc);
    CHECK(c_len == n && s_len == nb * 4 && d_len == n * 4);
    uint8_t *q = (uint8_t *)malloc(n + 1);
    float *s = (float *)malloc((nb + 1) * 4);
    float *d = (float *)malloc((n + 1) * 4);
    q[n] = 0x5A;
    s[nb] = 9.0f;
    if (dtype == QUANT_DTYPE_F32) {
        EXPECT_STATUS(quant_fp8_block_quantize((const float *)in, rows, cols, br, bc, q, n + 1, s, nb + 1),
                      QUANT_OK);
        CHECK(memcmp(q, codes, n) == 0 && memcmp(s, scale, nb * 4) == 0);
        memset(q, 0, n);
    }
    EXPECT_STATUS(quant_fp8_block_quantize_ex(dtype, in, rows, cols, br, bc, q, n + 1, s, nb + 1), QUANT_OK);
    CHECK(memcmp(q, codes, n) == 0);
    CHECK(memcmp(s, scale, nb * 4) == 0);
    CHECK(q[n] == 0x5A && s[nb] == 9.0f);
    d[n] = 7.0f;
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, rows, cols, br, bc, d, n + 1), QUANT_OK);
    CHECK(memcmp(d, deq, n * 4) == 0);
    CHECK(d[n] == 7.0f);
    free(in), free(codes), free(scale), free(deq), free(q), free(s), free(d);
}

static void test_fixtures(void) {
    CHECK(QUANT_FP8_BLOCK_DEEPSEEK == 128);
    check_case("wide_300x260", QUANT_DTYPE_F32, "f32", 300, 260, 128, 128);
    check_case("zeros_200x200", QUANT_DTYPE_F32, "f32", 200, 200, 128, 128);
    check_case("ties_128x128", QUANT_DTYPE_F32, "f32", 128, 128, 128, 128);
    check_case("blocks64x32_100x70", QUANT_DTYPE_F32, "f32", 100, 70, 64, 32);
    check_case("act_7x384", QUANT_DTYPE_F32, "f32", 7, 384, 1, 128);
    check_case("bf16_140x260", QUANT_DTYPE_BF16, "bf16", 140, 260, 128, 128);
    check_case("f16_130x140", QUANT_DTYPE_F16, "f16", 130, 140, 128, 128);
}

static void test_scale_count(void) {
    CHECK(quant_fp8_block_scale_count(257, 129, 128, 128) == 6);
    CHECK(quant_fp8_block_scale_count(128, 128, 128, 128) == 1);
    CHECK(quant_fp8_block_scale_count(7, 384, 1, 128) == 21);
    CHECK(quant_fp8_block_scale_count(0, 5, 128, 128) == 0 && quant_last_error(NULL, 0) > 0);
    CHECK(quant_fp8_block_scale_count(5, 5, 0, 128) == 0 && quant_last_error(NULL, 0) > 0);
    CHECK(quant_fp8_block_scale_count(5, 5, 128, 0) == 0);
    CHECK(quant_fp8_block_scale_count(SIZE_MAX, 2, 128, 128) == 0);
}

enum { R = 130, C = 260, N = R * C, NB = 6 };

static void test_errors(void) {
    static float x[N];
    static uint16_t h[N];
    static uint8_t q[N];
    static float s[NB], d[N];
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)((int)(i % 97) - 48) * 0.01f;
        h[i] = 0x3C00; /* f16 1.0 */
    }
    /* Argument errors: nothing written. */
    memset(q, 0xA5, sizeof q);
    memset(s, 0xA5, sizeof s);
    EXPECT_STATUS(quant_fp8_block_quantize(NULL, R, C, 128, 128, q, N, s, NB), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, NULL, N, s, NB), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, q, N, NULL, NB), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, NULL, 0, s, NB), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, q, N - 1, s, NB), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, q, N, s, NB - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_fp8_block_quantize(x, 0, C, 128, 128, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, 0, 128, 128, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 0, 128, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 0, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize(x, SIZE_MAX, 2, 128, 128, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize_ex(3, x, R, C, 128, 128, q, N, s, NB), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_F32, (const char *)x + 2, R, C, 128, 128, q, N, s,
                                              NB),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_BF16, (const char *)h + 1, R, C, 128, 128, q, N, s,
                                              NB),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_F16, NULL, R, C, 128, 128, q, N, s, NB),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_F16, h, R, C, 128, 128, q, N - 1, s, NB),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(harness_untouched(q, sizeof q, 0xA5) && harness_untouched(s, sizeof s, 0xA5));

    /* Value errors: outputs zero-filled, the first bad index named. */
    x[5 + 129 * C] = INFINITY;
    x[N - 1] = NAN;
    EXPECT_STATUS(quant_fp8_block_quantize(x, R, C, 128, 128, q, N, s, NB), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("33545");
    CHECK(harness_untouched(q, sizeof q, 0) && harness_untouched(s, sizeof s, 0));
    x[5 + 129 * C] = 0.0f;
    x[N - 1] = 0.0f;
    memset(q, 0xA5, sizeof q);
    memset(s, 0xA5, sizeof s);
    h[1000] = 0x7E00; /* f16 NaN */
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_F16, h, R, C, 128, 128, q, N, s, NB),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("1000");
    CHECK(harness_untouched(q, sizeof q, 0) && harness_untouched(s, sizeof s, 0));
    h[1000] = 0x3C00;
    EXPECT_STATUS(quant_fp8_block_quantize_ex(QUANT_DTYPE_F16, h, R, C, 128, 128, q, N, s, NB), QUANT_OK);
    /* f16 1.0 everywhere: scale_inv 1/448, every code 448 (0x7E). */
    CHECK(s[0] == 1.0f / 448.0f && s[NB - 1] == 1.0f / 448.0f && q[0] == 0x7E && q[N - 1] == 0x7E);

    /* Dequantize: argument errors and a non-finite scale write nothing. */
    memset(d, 0xA5, sizeof d);
    EXPECT_STATUS(quant_fp8_block_dequantize(NULL, s, R, C, 128, 128, d, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_dequantize(q, NULL, R, C, 128, 128, d, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, R, C, 128, 128, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, R, C, 128, 128, d, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, R, C, 0, 128, d, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, 0, C, 128, 128, d, N), QUANT_ERR_INVALID_ARGUMENT);
    s[4] = NAN;
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, R, C, 128, 128, d, N), QUANT_ERR_NON_FINITE);
    CHECK(harness_untouched(d, sizeof d, 0xA5));
    s[4] = 1.0f / 448.0f;
    EXPECT_STATUS(quant_fp8_block_dequantize(q, s, R, C, 128, 128, d, N), QUANT_OK);
    CHECK(d[0] == 1.0f && d[N - 1] == 1.0f);
}

int main(void) {
    test_fixtures();
    test_scale_count();
    test_errors();
    END();
}
