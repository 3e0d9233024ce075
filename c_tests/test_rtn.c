/* Round-to-nearest kernels: quant_scale_count, INT8 symmetric, INT4 asymmetric, and the signed-nibble
 * pack/unpack helpers. Every export on its success path (known values, ties to even, nibble order,
 * all-zero groups) and on each error path (status, a recorded detail, outputs untouched). */
#include <float.h>
#include <stdint.h>

#include "harness.h"

/* Clears this thread's error detail with a call that succeeds. */
static void clear_detail(void) { (void)quant_pack_int4(NULL, 0, NULL, 0); }

/* A value-returning call on a bad shape gave 0 and recorded a detail. */
#define EXPECT_ZERO_WITH_DETAIL(call)                           \
    do {                                                        \
        clear_detail();                                         \
        CHECK((call) == 0);                                     \
        CHECK(quant_last_error(NULL, 0) > 0);                   \
    } while (0)

static void test_scale_count(void) {
    CHECK(quant_scale_count(4, 300, 128) == 12); /* 128 does not divide 300: 3 groups a row */
    CHECK(quant_scale_count(4, 256, 128) == 8);  /* divides */
    CHECK(quant_scale_count(3, 10, 0) == 3);     /* per row */
    CHECK(quant_scale_count(2, 5, 99) == 2);     /* group larger than a row */
    CHECK(quant_scale_count(2, 5, 1) == 10);
    EXPECT_ZERO_WITH_DETAIL(quant_scale_count(0, 5, 0));
    EXPECT_ZERO_WITH_DETAIL(quant_scale_count(5, 0, 0));
    EXPECT_ZERO_WITH_DETAIL(quant_scale_count(SIZE_MAX / 2, 3, 0));
}

static void test_int8_quantize(void) {
    /* A small row, per row: -0.5 / (1/127) is exactly -63.5 and rounds to even, -64. */
    {
        const float x[4] = {1.0f, -0.5f, 0.25f, -1.0f};
        int8_t q[6];
        float s[2];
        FILL(q, sizeof q);
        FILL(s, sizeof s);
        EXPECT_STATUS(quant_int8_quantize(x, 1, 4, 0, q, 6, s, 2), QUANT_OK);
        CHECK(q[0] == 127 && q[1] == -64 && q[2] == 32 && q[3] == -127);
        CHECK(s[0] == 1.0f / 127.0f);
        /* Only the needed prefix is written. */
        CHECK(UNTOUCHED(&q[4], 2));
        CHECK(UNTOUCHED(&s[1], sizeof(float)));
    }
    /* Exact ties (absmax 127 -> scale 1): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2, 126.5 -> 126, -3.5 -> -4. */
    {
        const float x[8] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -0.5f, 126.5f, -3.5f};
        const int8_t want[8] = {127, 0, 2, 2, -2, 0, 126, -4};
        int8_t q[8];
        float s;
        EXPECT_STATUS(quant_int8_quantize(x, 1, 8, 0, q, 8, &s, 1), QUANT_OK);
        CHECK(s == 1.0f);
        CHECK(memcmp(q, want, sizeof want) == 0);
    }
    /* Groups of 2 over 2 x 5 (2 does not divide 5: 3 groups a row, the last of one column), with an
     * all-zero group, which has scale 0 and codes 0. */
    {
        const float x[10] = {2.54f, -1.27f, 0.0f, 0.0f, -5.0f, /* row 1 */ 1.0f, 0.5f, 0.0f, 4.0f, 0.0f};
        int8_t q[10];
        float s[6];
        CHECK(quant_scale_count(2, 5, 2) == 6);
        EXPECT_STATUS(quant_int8_quantize(x, 2, 5, 2, q, 10, s, 6), QUANT_OK);
        CHECK(s[0] == 2.54f / 127.0f && s[1] == 0.0f && s[2] == 5.0f / 127.0f);
        CHECK(s[3] == 1.0f / 127.0f && s[4] == 4.0f / 127.0f && s[5] == 0.0f);
        CHECK(q[0] == 127 && q[1] == -64 && q[2] == 0 && q[3] == 0 && q[4] == -127);
        CHECK(q[5] == 127 && q[6] == 64 && q[7] == 0 && q[8] == 127 && q[9] == 0);
    }

    /* Argument errors: nothing written. Value errors: the outputs zero-filled. */
    const float x[6] = {1, 2, 3, -4, 5, 6};
    int8_t q[6];
    float s[4];
    FILL(q, sizeof q);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_int8_quantize(NULL, 2, 3, 2, q, 6, s, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_int8_quantize(x, 2, 3, 2, NULL, 6, s, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_int8_quantize(x, 2, 3, 2, q, 6, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_int8_quantize(x, 0, 3, 2, q, 6, s, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize(x, 2, 0, 2, q, 6, s, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize(x, SIZE_MAX / 2, 3, 2, q, 6, s, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize(x, 2, 3, 2, q, 5, s, 4), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_int8_quantize(x, 2, 3, 2, q, 6, s, 3), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("scales");
    /* A NULL output with length 0 is a too-small buffer, not a NULL pointer. */
    EXPECT_STATUS(quant_int8_quantize(x, 2, 3, 2, NULL, 0, s, 4), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(UNTOUCHED(q, sizeof q));
    CHECK(UNTOUCHED(s, sizeof s));
    float bad[6] = {1, 2, 3, -4, 5, 6};
    bad[5] = NAN;
    EXPECT_STATUS(quant_int8_quantize(bad, 2, 3, 2, q, 6, s, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[5]");
    bad[5] = 6;
    bad[3] = INFINITY;
    EXPECT_STATUS(quant_int8_quantize(bad, 2, 3, 2, q, 6, s, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[3]");
    bad[3] = -4;
    bad[0] = -INFINITY;
    EXPECT_STATUS(quant_int8_quantize(bad, 2, 3, 2, q, 6, s, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[0]");
    /* An absmax of exactly FLT_MAX would dequantize to infinity (127 * (FLT_MAX / 127) rounds up). */
    bad[0] = 1;
    bad[4] = -FLT_MAX;
    EXPECT_STATUS(quant_int8_quantize(bad, 2, 3, 2, q, 6, s, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("row 1, group 0");
    CHECK(ZEROED(q, sizeof q));
    CHECK(ZEROED(s, sizeof s));
}

static void test_int8_dequantize(void) {
    const int8_t q[6] = {127, -64, 0, -127, 1, -128};
    const float s[4] = {0.5f, 2.0f, 0.25f, 0.0f}; /* 2 x 3, groups of 2 */
    float y[7];
    FILL(y, sizeof y);
    EXPECT_STATUS(quant_int8_dequantize(q, s, 2, 3, 2, y, 7), QUANT_OK);
    CHECK(y[0] == 63.5f && y[1] == -32.0f && y[2] == 0.0f);
    CHECK(y[3] == -31.75f && y[4] == 0.25f && y[5] == 0.0f); /* -128 is accepted; scale 0 gives 0 */
    CHECK(UNTOUCHED(&y[6], sizeof(float)));

    /* Round trip of a quantized row: within half a step. */
    {
        const float x[5] = {0.3f, -0.7f, 0.11f, 0.0f, 0.69f};
        int8_t c[5];
        float sc, back[5];
        EXPECT_STATUS(quant_int8_quantize(x, 1, 5, 0, c, 5, &sc, 1), QUANT_OK);
        EXPECT_STATUS(quant_int8_dequantize(c, &sc, 1, 5, 0, back, 5), QUANT_OK);
        for (int i = 0; i < 5; i++) CHECK(fabsf(x[i] - back[i]) <= sc / 2 * 1.0001f);
        CHECK(back[3] == 0.0f);
    }

    FILL(y, sizeof y);
    EXPECT_STATUS(quant_int8_dequantize(NULL, s, 2, 3, 2, y, 6), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_int8_dequantize(q, NULL, 2, 3, 2, y, 6), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_int8_dequantize(q, s, 2, 3, 2, NULL, 6), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_dequantize(q, s, 0, 3, 2, y, 6), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_dequantize(q, s, 2, 0, 2, y, 6), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_dequantize(q, s, 3, SIZE_MAX / 2, 2, y, 6), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_dequantize(q, s, 2, 3, 2, y, 5), QUANT_ERR_BUFFER_TOO_SMALL);
    float bad_s[4] = {0.5f, 2.0f, 0.25f, 0.0f};
    bad_s[1] = NAN;
    EXPECT_STATUS(quant_int8_dequantize(q, bad_s, 2, 3, 2, y, 6), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("scales[1]");
    bad_s[1] = 2.0f;
    bad_s[3] = -INFINITY;
    EXPECT_STATUS(quant_int8_dequantize(q, bad_s, 2, 3, 2, y, 6), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("scales[3]");
    CHECK(UNTOUCHED(y, sizeof y));
}

static void test_int4_packed_size(void) {
    CHECK(quant_int4_packed_size(3, 5) == 9);
    CHECK(quant_int4_packed_size(3, 6) == 9);
    CHECK(quant_int4_packed_size(1, 1) == 1);
    EXPECT_ZERO_WITH_DETAIL(quant_int4_packed_size(0, 5));
    EXPECT_ZERO_WITH_DETAIL(quant_int4_packed_size(5, 0));
    EXPECT_ZERO_WITH_DETAIL(quant_int4_packed_size(SIZE_MAX / 2, 3));
}

static void test_int4(void) {
    /* One row of 7 (odd): lo = -3, hi = 12 -> scale 1, zero 3. Ties: 2.5 -> 2 (+3 = 5), -0.5 -> 0 (+3).
     * Codes [0, 15, 3, 4, 5, 3, 10]; the even column in the low nibble, the pad nibble 0. */
    {
        const float x[7] = {-3.0f, 12.0f, 0.0f, 1.0f, 2.5f, -0.5f, 7.0f};
        uint8_t p[5];
        float s[2];
        uint8_t z[2];
        FILL(p, sizeof p);
        FILL(s, sizeof s);
        FILL(z, sizeof z);
        EXPECT_STATUS(quant_int4_quantize(x, 1, 7, 0, p, 5, s, z, 2), QUANT_OK);
        CHECK(s[0] == 1.0f && z[0] == 3);
        CHECK(p[0] == 0xF0 && p[1] == 0x43 && p[2] == 0x35 && p[3] == 0x0A);
        CHECK(UNTOUCHED(&p[4], 1) && UNTOUCHED(&s[1], sizeof(float)) && UNTOUCHED(&z[1], 1));
    }
    /* 2 x 7 in groups of 4 (the last group of a row has 3 columns), with an all-zero group. */
    const float x[14] = {-3.0f, 12.0f, 0.0f, 1.0f, 2.5f, -0.5f, 7.0f, /* row 1 */
                         0.0f, 0.0f, 0.0f, 0.0f, 3.0f, 2.0f, 1.0f};
    uint8_t p[8];
    float s[4];
    uint8_t z[4];
    CHECK(quant_int4_packed_size(2, 7) == 8 && quant_scale_count(2, 7, 4) == 4);
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, p, 8, s, z, 4), QUANT_OK);
    CHECK(s[0] == 1.0f && z[0] == 3);        /* [-3, 12, 0, 1] */
    CHECK(s[1] == 0.5f && z[1] == 1);        /* [2.5, -0.5, 7]: lo -0.5, hi 7 */
    CHECK(s[2] == 0.0f && z[2] == 0);        /* all zero */
    CHECK(s[3] == 3.0f / 15.0f && z[3] == 0); /* [3, 2, 1]: lo 0 */
    const uint8_t want[8] = {0xF0, 0x43, 0x06, 0x0F, 0x00, 0x00, 0xAF, 0x05};
    CHECK(memcmp(p, want, sizeof want) == 0);
    float y[15];
    FILL(y, sizeof y);
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, 2, 7, 4, y, 15), QUANT_OK);
    for (int i = 0; i < 14; i++) CHECK(y[i] == x[i]); /* every value here is exactly representable */
    CHECK(UNTOUCHED(&y[14], sizeof(float)));

    /* Quantize errors: nothing written. */
    uint8_t pq[8];
    float sq[4];
    uint8_t zq[4];
    FILL(pq, sizeof pq);
    FILL(sq, sizeof sq);
    FILL(zq, sizeof zq);
    EXPECT_STATUS(quant_int4_quantize(NULL, 2, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, NULL, 8, sq, zq, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("dst");
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, pq, 8, NULL, zq, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, pq, 8, sq, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("zeros");
    EXPECT_STATUS(quant_int4_quantize(x, 0, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_quantize(x, 2, 0, 4, pq, 8, sq, zq, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_quantize(x, SIZE_MAX / 4, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, pq, 7, sq, zq, 4), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("dst holds 7 bytes but 8 are needed"); /* dst_len counts bytes */
    EXPECT_STATUS(quant_int4_quantize(x, 2, 7, 4, pq, 8, sq, zq, 3), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_DETAIL_CONTAINS("scales");
    CHECK(UNTOUCHED(pq, sizeof pq) && UNTOUCHED(sq, sizeof sq) && UNTOUCHED(zq, sizeof zq));
    float bad[14];
    memcpy(bad, x, sizeof bad);
    bad[9] = NAN;
    EXPECT_STATUS(quant_int4_quantize(bad, 2, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[9]");
    bad[9] = 0.0f;
    bad[13] = INFINITY;
    EXPECT_STATUS(quant_int4_quantize(bad, 2, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[13]");
    bad[13] = -INFINITY;
    EXPECT_STATUS(quant_int4_quantize(bad, 2, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("src[13]");
    /* A group whose range overflows float has no scale. */
    bad[13] = 1.0f;
    bad[11] = -3e38f;
    bad[12] = 3e38f;
    EXPECT_STATUS(quant_int4_quantize(bad, 2, 7, 4, pq, 8, sq, zq, 4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("row 1, group 1");
    CHECK(ZEROED(pq, sizeof pq) && ZEROED(sq, sizeof sq) && ZEROED(zq, sizeof zq));

    /* Dequantize errors: nothing written. */
    FILL(y, sizeof y);
    EXPECT_STATUS(quant_int4_dequantize(NULL, s, z, 2, 7, 4, y, 14), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_int4_dequantize(p, NULL, z, 2, 7, 4, y, 14), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("scales");
    EXPECT_STATUS(quant_int4_dequantize(p, s, NULL, 2, 7, 4, y, 14), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("zeros");
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, 2, 7, 4, NULL, 14), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, 0, 7, 4, y, 14), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, 2, 0, 4, y, 14), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, SIZE_MAX / 4, 7, 4, y, 14), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_dequantize(p, s, z, 2, 7, 4, y, 13), QUANT_ERR_BUFFER_TOO_SMALL);
    float bad_s[4];
    memcpy(bad_s, s, sizeof bad_s);
    bad_s[2] = NAN;
    EXPECT_STATUS(quant_int4_dequantize(p, bad_s, z, 2, 7, 4, y, 14), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("scales[2]");
    bad_s[2] = INFINITY;
    EXPECT_STATUS(quant_int4_dequantize(p, bad_s, z, 2, 7, 4, y, 14), QUANT_ERR_NON_FINITE);
    const uint8_t bad_z[4] = {3, 16, 0, 0};
    EXPECT_STATUS(quant_int4_dequantize(p, s, bad_z, 2, 7, 4, y, 14), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("zeros[1]");
    CHECK(UNTOUCHED(y, sizeof y));
}

static void test_pack_unpack(void) {
    /* Low nibble first, two's-complement nibbles, the odd count's pad nibble 0. */
    const int8_t v[7] = {1, -2, 3, -4, 5, 6, 7};
    uint8_t p[5];
    FILL(p, sizeof p);
    EXPECT_STATUS(quant_pack_int4(v, 7, p, 5), QUANT_OK);
    CHECK(p[0] == 0xE1 && p[1] == 0xC3 && p[2] == 0x65 && p[3] == 0x07);
    CHECK(UNTOUCHED(&p[4], 1));
    int8_t back[8];
    FILL(back, sizeof back);
    EXPECT_STATUS(quant_unpack_int4(p, 7, back, 8), QUANT_OK);
    CHECK(memcmp(back, v, sizeof v) == 0);
    CHECK(UNTOUCHED(&back[7], 1));

    /* Every nibble sign-extends. */
    int8_t all[16], all_back[16];
    uint8_t all_p[8];
    for (int i = 0; i < 16; i++) all[i] = (int8_t)(i - 8);
    EXPECT_STATUS(quant_pack_int4(all, 16, all_p, 8), QUANT_OK);
    CHECK(all_p[0] == 0x98 && all_p[7] == 0x76);
    EXPECT_STATUS(quant_unpack_int4(all_p, 16, all_back, 16), QUANT_OK);
    CHECK(memcmp(all, all_back, sizeof all) == 0);

    /* n = 0: NULL pointers are fine. */
    EXPECT_STATUS(quant_pack_int4(NULL, 0, NULL, 0), QUANT_OK);
    EXPECT_STATUS(quant_unpack_int4(NULL, 0, NULL, 0), QUANT_OK);

    /* Errors: nothing written. */
    FILL(p, sizeof p);
    FILL(back, sizeof back);
    EXPECT_STATUS(quant_pack_int4(NULL, 7, p, 5), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("values");
    EXPECT_STATUS(quant_pack_int4(v, 7, NULL, 4), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_pack_int4(v, 7, p, 3), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_pack_int4(v, SIZE_MAX, p, 5), QUANT_ERR_INVALID_ARGUMENT);
    const int8_t out_of_range[4] = {0, 7, -8, 8};
    EXPECT_STATUS(quant_pack_int4(out_of_range, 4, p, 5), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("values[3]");
    const int8_t too_negative[3] = {0, -9, 1};
    EXPECT_STATUS(quant_pack_int4(too_negative, 3, p, 5), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("values[1]");
    CHECK(UNTOUCHED(p, sizeof p));
    const uint8_t packed[4] = {0xE1, 0xC3, 0x65, 0x07};
    EXPECT_STATUS(quant_unpack_int4(NULL, 7, back, 8), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("src");
    EXPECT_STATUS(quant_unpack_int4(packed, 7, NULL, 7), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_unpack_int4(packed, 7, back, 6), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_unpack_int4(packed, SIZE_MAX, back, 8), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(back, sizeof back));
}

int main(void) {
    test_scale_count();
    test_int8_quantize();
    test_int8_dequantize();
    test_int4_packed_size();
    test_int4();
    test_pack_unpack();
    END();
}
