/* The one-pass quantizers (quant_*_quantize_streaming) against the checked ones: the same outputs byte
 * for byte on success at 1 and 3 threads; on a NaN the same status and detail, with the outputs'
 * prefixes zero-filled and nothing past them touched (the checked form touches nothing); argument
 * errors write nothing; one scale for the whole input is the checked form. */
#include <float.h>
#include <stdint.h>

#include "harness.h"

#define ROWS 512 /* 153600 elements: enough for the kernels to use 2 threads */
#define COLS 300
#define N (ROWS * COLS)
#define PAD 8

static float src[N];

static void fill_src(void) {
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        src[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 8.0f;
    }
}

/* Both forms of the three quantizers on `x`, for one group size; checks equality on success, the
 * error contract otherwise (`bad` is the expected error, QUANT_OK for none). */
static void compare(const float *x, size_t rows, size_t group, quant_status bad) {
    size_t n = rows * COLS, ng = quant_scale_count(rows, COLS, group), nb = quant_int4_packed_size(rows, COLS);
    static int8_t q8a[N + PAD], q8b[N + PAD];
    static uint8_t qa[N + PAD], qb[N + PAD], za[N + PAD], zb[N + PAD];
    static float sa[N + PAD], sb[N + PAD];
    char da[256], db[256];
    for (int kind = 0; kind < 3; kind++) {
        quant_status ra, rb;
        size_t codes = kind == 0 ? n : kind == 1 ? nb : n;
        FILL(q8a, sizeof q8a); FILL(q8b, sizeof q8b); FILL(qa, sizeof qa); FILL(qb, sizeof qb);
        FILL(za, sizeof za); FILL(zb, sizeof zb); FILL(sa, sizeof sa); FILL(sb, sizeof sb);
        if (kind == 0) {
            ra = quant_int8_quantize(x, rows, COLS, group, q8a, N + PAD, sa, N + PAD);
            quant_last_error(da, sizeof da);
            rb = quant_int8_quantize_streaming(x, rows, COLS, group, q8b, N + PAD, sb, N + PAD);
            quant_last_error(db, sizeof db);
            memcpy(qa, q8a, sizeof qa);
            memcpy(qb, q8b, sizeof qb);
        } else if (kind == 1) {
            ra = quant_int4_quantize(x, rows, COLS, group, qa, N + PAD, sa, za, N + PAD);
            quant_last_error(da, sizeof da);
            rb = quant_int4_quantize_streaming(x, rows, COLS, group, qb, N + PAD, sb, zb, N + PAD);
            quant_last_error(db, sizeof db);
        } else {
            ra = quant_fp8_e4m3_quantize(x, rows, COLS, group, qa, N + PAD, sa, N + PAD);
            quant_last_error(da, sizeof da);
            rb = quant_fp8_e4m3_quantize_streaming(x, rows, COLS, group, qb, N + PAD, sb, N + PAD);
            quant_last_error(db, sizeof db);
        }
        CHECK(ra == bad && rb == bad);
        if (bad == QUANT_OK) {
            CHECK(memcmp(qa, qb, sizeof qa) == 0);
            CHECK(memcmp(sa, sb, sizeof sa) == 0);
            CHECK(memcmp(za, zb, sizeof za) == 0);
            continue;
        }
        CHECK(strcmp(da, db) == 0);
        CHECK(UNTOUCHED(qa, sizeof qa) && UNTOUCHED(sa, sizeof sa) && UNTOUCHED(za, sizeof za));
        if (rows == 1) { /* one row (here one scale for everything): the checked form */
            CHECK(UNTOUCHED(qb, sizeof qb) && UNTOUCHED(sb, sizeof sb) && UNTOUCHED(zb, sizeof zb));
            continue;
        }
        int zeroed = 1;
        for (size_t i = 0; i < codes; i++) zeroed &= qb[i] == 0;
        for (size_t i = 0; i < ng; i++) zeroed &= sb[i] == 0.0f;
        if (kind == 1)
            for (size_t i = 0; i < ng; i++) zeroed &= zb[i] == 0;
        CHECK(zeroed);
        CHECK(UNTOUCHED(&qb[codes], sizeof qb - codes));
        CHECK(UNTOUCHED(&sb[ng], (N + PAD - ng) * sizeof(float)));
        if (kind == 1) CHECK(UNTOUCHED(&zb[ng], N + PAD - ng));
    }
}

int main(void) {
    fill_src();
    for (int threads = 1; threads <= 3; threads += 2) {
        EXPECT_STATUS(quant_set_threads((size_t)threads), QUANT_OK);
        compare(src, ROWS, 128, QUANT_OK);
        compare(src, ROWS, 0, QUANT_OK);
        compare(src, 1, 0, QUANT_OK);
    }
    /* A NaN in row 400 (rows 0..399 are written before it is seen), an infinity in the last element. */
    src[400 * COLS + 7] = NAN;
    compare(src, ROWS, 128, QUANT_ERR_NON_FINITE);
    compare(src, ROWS, 0, QUANT_ERR_NON_FINITE);
    src[400 * COLS + 7] = 1.0f;
    src[N - 1] = -INFINITY;
    compare(src, ROWS, 64, QUANT_ERR_NON_FINITE);
    src[N - 1] = 1.0f;
    src[3] = NAN;
    compare(src, 1, 0, QUANT_ERR_NON_FINITE);
    src[3] = 1.0f;
    /* FLT_MAX: INT8's 127 * scale overflows (INVALID_ARGUMENT), same detail in both forms. */
    {
        int8_t qa[COLS * 4], qb[COLS * 4];
        float sa[4], sb[4];
        char da[256], db[256];
        src[2 * COLS + 1] = FLT_MAX;
        FILL(qa, sizeof qa); FILL(sa, sizeof sa);
        EXPECT_STATUS(quant_int8_quantize(src, 4, COLS, 0, qa, sizeof qa, sa, 4), QUANT_ERR_INVALID_ARGUMENT);
        quant_last_error(da, sizeof da);
        EXPECT_STATUS(quant_int8_quantize_streaming(src, 4, COLS, 0, qb, sizeof qb, sb, 4), QUANT_ERR_INVALID_ARGUMENT);
        quant_last_error(db, sizeof db);
        CHECK(strcmp(da, db) == 0);
        CHECK(UNTOUCHED(qa, sizeof qa) && UNTOUCHED(sa, sizeof sa));
        int zeroed = 1;
        for (size_t i = 0; i < sizeof qb; i++) zeroed &= qb[i] == 0;
        CHECK(zeroed && sb[0] == 0.0f && sb[3] == 0.0f);
        src[2 * COLS + 1] = 1.0f;
    }
    /* Argument errors write nothing. */
    {
        int8_t q[COLS];
        uint8_t u[COLS], z[2];
        float s[2];
        FILL(q, sizeof q); FILL(u, sizeof u); FILL(z, sizeof z); FILL(s, sizeof s);
        src[0] = NAN; /* would be a value error: the argument error must come first */
        EXPECT_STATUS(quant_int8_quantize_streaming(src, 2, COLS, 0, q, COLS, s, 2), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_int8_quantize_streaming(NULL, 2, COLS, 0, q, COLS, s, 2), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_int4_quantize_streaming(src, 2, COLS, 0, u, COLS, s, z, 1), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_fp8_e4m3_quantize_streaming(src, 2, COLS, 0, u, COLS, s, 2), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_fp8_e4m3_quantize_streaming(src, 0, COLS, 0, u, COLS, s, 2), QUANT_ERR_INVALID_ARGUMENT);
        CHECK(UNTOUCHED(q, sizeof q) && UNTOUCHED(u, sizeof u) && UNTOUCHED(z, sizeof z) && UNTOUCHED(s, sizeof s));
    }
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
    END();
}
