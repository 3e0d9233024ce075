/* Plain casts (FP16, BF16, FP8 E4M3FN / E5M2) and the FP8 E4M3 scaled quantizer, through the C ABI:
 * known values, saturation, NaN, n = 0 with NULL, and every error path with untouched outputs. */
#include <stdint.h>

#include "harness.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The four encoders and four decoders share their error paths: NULL src, NULL dst, an impossible n. */
static void plain_cast_errors(void) {
    float f[4];
    uint16_t h[4];
    uint8_t b[4];
    const float fin[4] = {1, 2, 3, 4};
    const uint16_t hin[4] = {0x3C00, 0, 0, 0};
    const uint8_t bin[4] = {0x38, 0, 0, 0};
    size_t huge = SIZE_MAX / 2;

    FILL(h, sizeof h);
    EXPECT_STATUS(quant_f32_to_f16(NULL, h, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_f32_to_f16(fin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_f32_to_f16(fin, h, huge), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_f32_to_bf16(NULL, h, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_f32_to_bf16(fin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_f32_to_bf16(fin, h, huge), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(h, sizeof h));

    FILL(f, sizeof f);
    EXPECT_STATUS(quant_f16_to_f32(NULL, f, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_f16_to_f32(hin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_f16_to_f32(hin, f, huge), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_bf16_to_f32(NULL, f, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bf16_to_f32(hin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_bf16_to_f32(hin, f, huge), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(NULL, f, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(bin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(bin, f, huge), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(NULL, f, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(bin, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(bin, f, huge), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(f, sizeof f));

    FILL(b, sizeof b);
    for (int sat = 0; sat < 2; sat++) {
        EXPECT_STATUS(quant_f32_to_fp8_e4m3(NULL, b, 4, sat), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_f32_to_fp8_e4m3(fin, NULL, 4, sat), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_f32_to_fp8_e4m3(fin, b, huge, sat), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_f32_to_fp8_e5m2(NULL, b, 4, sat), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_f32_to_fp8_e5m2(fin, NULL, 4, sat), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_f32_to_fp8_e5m2(fin, b, huge, sat), QUANT_ERR_INVALID_ARGUMENT);
    }
    CHECK(UNTOUCHED(b, sizeof b));

    /* n = 0 with NULL pointers is a successful no-op. */
    EXPECT_STATUS(quant_f32_to_f16(NULL, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_f16_to_f32(NULL, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_bf16(NULL, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_bf16_to_f32(NULL, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e4m3(NULL, NULL, 0, false), QUANT_OK);
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(NULL, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e5m2(NULL, NULL, 0, true), QUANT_OK);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(NULL, NULL, 0), QUANT_OK);
}

static void plain_cast_values(void) {
    float nan = float_of(0x7FC00000u), neg_nan = float_of(0xFFA00001u);
    float inf = float_of(0x7F800000u);
    /* 1, 448, 480, -480, +inf, -inf, NaN, -NaN (signalling payload), 57344, 61440, -0, 2^-9, 2^-10 */
    const float x[13] = {1.0f, 448.0f, 480.0f, -480.0f, inf, -inf, nan, neg_nan,
                         57344.0f, 61440.0f, -0.0f, 0.001953125f, 0.0009765625f};
    enum { N = 13 };
    uint16_t h[N], bf[N];
    uint8_t e4[N], e4s[N], e5[N], e5s[N];
    EXPECT_STATUS(quant_f32_to_f16(x, h, N), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_bf16(x, bf, N), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e4m3(x, e4, N, false), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e4m3(x, e4s, N, true), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e5m2(x, e5, N, false), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e5m2(x, e5s, N, true), QUANT_OK);

    CHECK(h[0] == 0x3C00 && bf[0] == 0x3F80 && e4[0] == 0x38 && e5[0] == 0x3C);
    CHECK(h[1] == 0x5F00 && e4[1] == 0x7E && e4s[1] == 0x7E);
    CHECK(e4[2] == 0x7F && e4s[2] == 0x7E);            /* 480: NaN, or saturated to 448 */
    CHECK(e4[3] == 0xFF && e4s[3] == 0xFE);            /* -480 */
    CHECK(e4[4] == 0x7F && e4s[4] == 0x7E && e4[5] == 0xFF && e4s[5] == 0xFE);
    CHECK(e5[4] == 0x7C && e5s[4] == 0x7B && e5[5] == 0xFC && e5s[5] == 0xFB);
    CHECK(h[4] == 0x7C00 && h[5] == 0xFC00 && bf[4] == 0x7F80 && bf[5] == 0xFF80);
    /* NaN stays NaN (sign kept) in every conversion. */
    CHECK(h[6] == 0x7E00 && bf[6] == 0x7FC0 && e4[6] == 0x7F && e4s[6] == 0x7F && e5[6] == 0x7E && e5s[6] == 0x7E);
    CHECK(h[7] == 0xFF00 && bf[7] == 0xFFE0 && e4[7] == 0xFF && e4s[7] == 0xFF && e5[7] == 0xFE && e5s[7] == 0xFE);
    CHECK(e5[8] == 0x7B && e5[9] == 0x7C && e5s[9] == 0x7B && e4[8] == 0x7F && e4s[8] == 0x7E);
    CHECK(h[10] == 0x8000 && bf[10] == 0x8000 && e4[10] == 0x80 && e5[10] == 0x80);
    CHECK(e4[11] == 0x01 && e4[12] == 0x00); /* smallest subnormal, and the tie below it (to even: 0) */

    /* Decoding. */
    const uint16_t hc[5] = {0x3C00, 0x7BFF, 0x0001, 0x7C01, 0xFC00};
    const uint16_t bc[4] = {0x3F80, 0x7F80, 0xFF81, 0x0001};
    const uint8_t c4[5] = {0x38, 0x7E, 0x01, 0x7F, 0xFF};
    const uint8_t c5[5] = {0x3C, 0x7B, 0x7C, 0x7D, 0xFF};
    float y[5];
    EXPECT_STATUS(quant_f16_to_f32(hc, y, 5), QUANT_OK);
    CHECK(y[0] == 1.0f && y[1] == 65504.0f && y[2] == ldexpf(1.0f, -24));
    CHECK(bits_of(y[3]) == 0x7FC02000u && bits_of(y[4]) == 0xFF800000u);
    EXPECT_STATUS(quant_bf16_to_f32(bc, y, 4), QUANT_OK);
    CHECK(y[0] == 1.0f && isinf(y[1]) && bits_of(y[2]) == 0xFFC10000u && y[3] == ldexpf(1.0f, -133));
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(c4, y, 5), QUANT_OK);
    CHECK(y[0] == 1.0f && y[1] == 448.0f && y[2] == ldexpf(1.0f, -9));
    CHECK(bits_of(y[3]) == 0x7FC00000u && bits_of(y[4]) == 0xFFC00000u);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(c5, y, 5), QUANT_OK);
    CHECK(y[0] == 1.0f && y[1] == 57344.0f && isinf(y[2]) && y[2] > 0);
    CHECK(bits_of(y[3]) == 0x7FC00000u && bits_of(y[4]) == 0xFFC00000u);

    /* Every FP8 code decodes and encodes back (NaN codes to the canonical NaN). */
    uint8_t all[256], back[256];
    float dec[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    EXPECT_STATUS(quant_fp8_e4m3_to_f32(all, dec, 256), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e4m3(dec, back, 256, false), QUANT_OK);
    CHECK(memcmp(all, back, 256) == 0);
    EXPECT_STATUS(quant_fp8_e5m2_to_f32(all, dec, 256), QUANT_OK);
    EXPECT_STATUS(quant_f32_to_fp8_e5m2(dec, back, 256, false), QUANT_OK);
    int ok = 1;
    for (int i = 0; i < 256; i++) {
        int nan_code = (i & 0x7F) > 0x7C;
        ok &= back[i] == (nan_code ? ((i & 0x80) | 0x7E) : i);
    }
    CHECK(ok);
}

static void scaled_fp8(void) {
    enum { R = 2, C = 5, G = 2, NG = 6 }; /* groups per row: [0,2) [2,4) [4,5) */
    const float x[R * C] = {1.0f, -2.0f, 0.0f, 0.0f, 3.0f, 4.0f, 0.5f, -8.0f, 0.25f, 7.0f};
    uint8_t q[R * C];
    float s[NG], y[R * C];
    /* NG = quant_scale_count(R, C, G) (exported by the integer kernels; not called here). */

    FILL(q, sizeof q);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, q, R * C, s, NG), QUANT_OK);
    CHECK(s[0] == 2.0f / 448.0f && s[1] == 0.0f && s[2] == 3.0f / 448.0f);
    CHECK(s[3] == 4.0f / 448.0f && s[4] == 8.0f / 448.0f && s[5] == 7.0f / 448.0f);
    CHECK(q[1] == 0xFE && q[2] == 0 && q[3] == 0 && q[4] == 0x7E && q[5] == 0x7E && q[7] == 0xFE);
    CHECK(q[0] == 0x76); /* 1 / (2/448) = 224 = 1.75 * 2^7 */
    FILL(y, sizeof y);
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(q, s, R, C, G, y, R * C), QUANT_OK);
    for (int i = 0; i < R * C; i++) CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) / 16.0f);
    CHECK(y[2] == 0.0f && y[3] == 0.0f && y[1] == -2.0f && y[7] == -8.0f);

    /* Per row (group_size 0). */
    float s_row[R];
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, 0, q, R * C, s_row, R), QUANT_OK);
    CHECK(s_row[0] == 3.0f / 448.0f && s_row[1] == 8.0f / 448.0f);

    /* Errors: nothing written. */
    FILL(q, sizeof q);
    FILL(s, sizeof s);
    FILL(y, sizeof y);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(NULL, R, C, G, q, R * C, s, NG), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, NULL, R * C, s, NG), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, q, R * C, NULL, NG), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, 0, C, G, q, R * C, s, NG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, 0, G, q, R * C, s, NG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, SIZE_MAX, 2, G, q, R * C, s, NG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, q, R * C - 1, s, NG), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, q, R * C, s, NG - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_fp8_e4m3_quantize(x, R, C, G, q, 0, s, NG), QUANT_ERR_BUFFER_TOO_SMALL);
    /* Argument errors write nothing; a value error zero-fills the outputs. */
    CHECK(UNTOUCHED(q, sizeof q));
    CHECK(UNTOUCHED(s, sizeof s));
    float bad[R * C];
    memcpy(bad, x, sizeof bad);
    bad[7] = float_of(0x7FC00000u);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(bad, R, C, G, q, R * C, s, NG), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[7]");
    bad[7] = x[7];
    bad[3] = -float_of(0x7F800000u);
    EXPECT_STATUS(quant_fp8_e4m3_quantize(bad, R, C, G, q, R * C, s, NG), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[3]");
    CHECK(ZEROED(q, sizeof q));
    CHECK(ZEROED(s, sizeof s));
    FILL(q, sizeof q);
    FILL(s, sizeof s);

    const float good_s[NG] = {1, 1, 1, 1, 1, 1};
    const uint8_t codes[R * C] = {0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38, 0x38};
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(NULL, good_s, R, C, G, y, R * C), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, NULL, R, C, G, y, R * C), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, R, C, G, NULL, R * C), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, 0, C, G, y, R * C), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, R, 0, G, y, R * C), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, 2, SIZE_MAX, G, y, R * C),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, R, C, G, y, R * C - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("dst");
    float bad_s[NG] = {1, 1, 1, 1, 1, 1};
    bad_s[4] = float_of(0x7F800000u);
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, bad_s, R, C, G, y, R * C), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("scales[4]");
    CHECK(UNTOUCHED(y, sizeof y));
    EXPECT_STATUS(quant_fp8_e4m3_dequantize(codes, good_s, R, C, G, y, R * C), QUANT_OK);
    CHECK(y[0] == 1.0f && y[9] == 1.0f);
}

int main(void) {
    plain_cast_errors();
    plain_cast_values();
    scaled_fp8();
    END();
}
