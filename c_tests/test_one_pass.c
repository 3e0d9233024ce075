/* The quantizers (quant_int8_quantize, quant_int4_quantize, quant_fp8_e4m3_quantize and the _ex forms)
 * check the input in the pass that quantizes it: the same outputs byte for byte at 1 and 3 threads; on
 * a NaN, an infinity or an overflowing group in a late row the error names the first bad index (or row
 * and group), the outputs' prefixes are zero-filled and nothing past them is touched; argument errors
 * write nothing, even when the input also holds a NaN. */
#include <float.h>
#include <stdint.h>

#include "harness.h"

#define ROWS 512 /* 153600 elements: enough for the kernels to use 2 threads */
#define COLS 300
#define N (ROWS * COLS)
#define PAD 8

static float src[N];
static uint16_t src16[N]; /* the same values as bf16 (exact: they are multiples of 2^-5) */

static void fill_src(void) {
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        src[i] = (float)((int)(s >> 24) - 128) / 32.0f;
    }
}

static uint16_t to_bf16(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (uint16_t)(b >> 16);
}

/* Outputs of one call, each PAD elements longer than a success writes. */
static int8_t q8[N + PAD];
static uint8_t qu[N + PAD], zu[N + PAD];
static float sc[N + PAD];

/* Quantizer `kind` (0 INT8, 1 INT4, 2 FP8; +3: the _ex form from bf16) on `rows` rows of `src`. */
static quant_status run(int kind, size_t rows, size_t group) {
    FILL(q8, sizeof q8); FILL(qu, sizeof qu); FILL(zu, sizeof zu); FILL(sc, sizeof sc);
    size_t n = rows * COLS, ng = quant_scale_count(rows, COLS, group), nb = quant_int4_packed_size(rows, COLS);
    switch (kind) {
    case 0: return quant_int8_quantize(src, rows, COLS, group, q8, n, sc, ng);
    case 1: return quant_int4_quantize(src, rows, COLS, group, qu, nb, sc, zu, ng);
    case 2: return quant_fp8_e4m3_quantize(src, rows, COLS, group, qu, n, sc, ng);
    case 3: return quant_int8_quantize_ex(QUANT_DTYPE_BF16, src16, rows, COLS, group, q8, n, sc, ng);
    case 4: return quant_int4_quantize_ex(QUANT_DTYPE_BF16, src16, rows, COLS, group, qu, nb, sc, zu, ng);
    default: return quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_BF16, src16, rows, COLS, group, qu, n, sc, ng);
    }
}

/* The outputs of a failed call: the prefixes a success writes are zero, the padding untouched. */
static int zero_filled(int kind, size_t rows, size_t group) {
    size_t n = rows * COLS, ng = quant_scale_count(rows, COLS, group), nb = quant_int4_packed_size(rows, COLS);
    int k = kind % 3, ok = 1;
    size_t codes = k == 1 ? nb : n;
    for (size_t i = 0; i < codes; i++) ok &= (k == 0 ? (uint8_t)q8[i] : qu[i]) == 0;
    for (size_t i = 0; i < ng; i++) ok &= sc[i] == 0.0f;
    if (k == 1)
        for (size_t i = 0; i < ng; i++) ok &= zu[i] == 0;
    ok &= k == 0 ? UNTOUCHED(&q8[codes], sizeof q8 - codes) && UNTOUCHED(qu, sizeof qu)
                 : UNTOUCHED(&qu[codes], sizeof qu - codes) && UNTOUCHED(q8, sizeof q8);
    ok &= UNTOUCHED(&sc[ng], (N + PAD - ng) * sizeof(float));
    ok &= k == 1 ? UNTOUCHED(&zu[ng], N + PAD - ng) : UNTOUCHED(zu, sizeof zu);
    return ok;
}

static void sync16(void) {
    for (int i = 0; i < N; i++) src16[i] = to_bf16(src[i]);
}

/* Every quantizer fails with `want` and a detail holding `needle`, its outputs zero-filled. */
static void expect_value_error(size_t rows, size_t group, quant_status want, const char *needle) {
    sync16();
    for (int kind = 0; kind < 6; kind++) {
        /* FP8 saturates; FLT_MAX as bf16 (truncated to 3.39e38) leaves INT8's 127 * scale finite. */
        if (want == QUANT_ERR_INVALID_ARGUMENT && (kind % 3 == 2 || kind == 3)) continue;
        EXPECT_STATUS(run(kind, rows, group), want);
        EXPECT_DETAIL_CONTAINS(needle);
        CHECK(zero_filled(kind, rows, group));
    }
}

/* On success the outputs are the same at 1 and 3 threads, float and bf16 sources alike. */
static void same_outputs(size_t rows, size_t group) {
    static int8_t q8a[N + PAD];
    static uint8_t qua[N + PAD], zua[N + PAD];
    static float sca[N + PAD];
    sync16();
    for (int kind = 0; kind < 3; kind++) {
        EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
        EXPECT_STATUS(run(kind, rows, group), QUANT_OK);
        memcpy(q8a, q8, sizeof q8); memcpy(qua, qu, sizeof qu); memcpy(zua, zu, sizeof zu); memcpy(sca, sc, sizeof sc);
        EXPECT_STATUS(quant_set_threads(3), QUANT_OK);
        for (int form = kind; form < 6; form += 3) {
            EXPECT_STATUS(run(form, rows, group), QUANT_OK);
            CHECK(memcmp(q8a, q8, sizeof q8) == 0 && memcmp(qua, qu, sizeof qu) == 0);
            CHECK(memcmp(zua, zu, sizeof zu) == 0 && memcmp(sca, sc, sizeof sc) == 0);
        }
    }
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
}

int main(void) {
    fill_src();
    same_outputs(ROWS, 128);
    same_outputs(ROWS, 0);
    same_outputs(1, 0);

    for (size_t threads = 1; threads <= 3; threads += 2) {
        EXPECT_STATUS(quant_set_threads(threads), QUANT_OK);
        /* A NaN in row 400 (rows 0..399 are written before it is seen). */
        src[400 * COLS + 7] = NAN;
        expect_value_error(ROWS, 128, QUANT_ERR_NON_FINITE, "[120007]");
        expect_value_error(ROWS, 0, QUANT_ERR_NON_FINITE, "[120007]");
        /* Two bad values: the detail names the first one, even when a thread meets the later one first. */
        src[N - 1] = -INFINITY;
        expect_value_error(ROWS, 64, QUANT_ERR_NON_FINITE, "[120007]");
        src[400 * COLS + 7] = 1.0f;
        expect_value_error(ROWS, 64, QUANT_ERR_NON_FINITE, "[153599]");
        src[N - 1] = 1.0f;
        /* One row, one scale for everything: the same contract. */
        src[3] = NAN;
        expect_value_error(1, 0, QUANT_ERR_NON_FINITE, "[3]");
        src[3] = 1.0f;
        /* A group whose range overflows float (INT8: absmax FLT_MAX; INT4: -3e38..3e38) in row 300. */
        src[300 * COLS + 1] = FLT_MAX;
        src[300 * COLS + 2] = -FLT_MAX;
        expect_value_error(ROWS, 0, QUANT_ERR_INVALID_ARGUMENT, "row 300, group 0");
        src[300 * COLS + 1] = 1.0f;
        src[300 * COLS + 2] = 1.0f;
    }
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);

    /* Argument errors write nothing, even with a NaN in the input (they are found first). */
    {
        int8_t q[COLS];
        uint8_t u[COLS], z[2];
        float s[2];
        FILL(q, sizeof q); FILL(u, sizeof u); FILL(z, sizeof z); FILL(s, sizeof s);
        src[0] = NAN;
        EXPECT_STATUS(quant_int8_quantize(src, 2, COLS, 0, q, COLS, s, 2), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_int8_quantize(NULL, 2, COLS, 0, q, COLS, s, 2), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_int4_quantize(src, 2, COLS, 0, u, COLS, s, z, 1), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_int4_quantize(src, 2, COLS, 0, u, COLS, s, NULL, 2), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_fp8_e4m3_quantize(src, 2, COLS, 0, u, COLS, s, 2), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_fp8_e4m3_quantize(src, 0, COLS, 0, u, COLS, s, 2), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F32, src, 2, COLS, 0, q, COLS, s, 2),
                      QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_int8_quantize_ex(7, src, 1, COLS, 0, q, COLS, s, 2), QUANT_ERR_INVALID_ARGUMENT);
        CHECK(UNTOUCHED(q, sizeof q) && UNTOUCHED(u, sizeof u) && UNTOUCHED(z, sizeof z) && UNTOUCHED(s, sizeof s));
        src[0] = 1.0f;
    }
    END();
}
