/* Run-time SIMD level and kernel threads: quant_simd_level, quant_set_simd_level,
 * quant_simd_level_name, quant_set_threads, quant_threads. Every level the CPU has gives the same INT8
 * and INT4 bits as the portable level, with 1, 2 and all threads; error paths leave the settings
 * unchanged and record a detail. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ROWS 300
#define COLS 520 /* 156000 elements: enough for 2 threads */

static float x[ROWS * COLS];

static void fill_input(void) {
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * (i % 7 == 0 ? 10.0f : 1.0f);
    }
    x[5] = 0.5f; /* a few exact values */
    x[6] = -0.0f;
}

struct outputs {
    int8_t q8[ROWS * COLS];
    float s8[ROWS * 5];
    uint8_t q4[ROWS * COLS / 2];
    float s4[ROWS * 5];
    uint8_t z4[ROWS * 5];
    float d8[ROWS * COLS];
};

static void run_all(struct outputs *o) {
    EXPECT_STATUS(quant_int8_quantize(x, ROWS, COLS, 128, o->q8, ROWS * COLS, o->s8, ROWS * 5), QUANT_OK);
    EXPECT_STATUS(quant_int4_quantize(x, ROWS, COLS, 128, o->q4, ROWS * COLS / 2, o->s4, o->z4, ROWS * 5),
                  QUANT_OK);
    EXPECT_STATUS(quant_int8_dequantize(o->q8, o->s8, ROWS, COLS, 128, o->d8, ROWS * COLS), QUANT_OK);
}

static void test_levels_and_threads(void) {
    static struct outputs want, got;
    CHECK(quant_threads() == 1); /* the default */
    int best = quant_simd_level();
    CHECK(best >= QUANT_SIMD_SCALAR && best <= QUANT_SIMD_NEON);
    CHECK(quant_simd_level_name(best) != NULL);
#if defined(__aarch64__)
    /* Every aarch64 CPU has NEON: it is the default (unless QUANT_SIMD forces a level), and the loop below
     * must run it, not only the portable level. */
    if (getenv("QUANT_SIMD") == NULL) CHECK(best == QUANT_SIMD_NEON);
#endif

    EXPECT_STATUS(quant_set_simd_level(QUANT_SIMD_SCALAR), QUANT_OK);
    CHECK(quant_simd_level() == QUANT_SIMD_SCALAR);
    run_all(&want);

    const int levels[] = {QUANT_SIMD_SCALAR, QUANT_SIMD_AVX2, QUANT_SIMD_AVX512, QUANT_SIMD_NEON};
    const size_t threads[] = {1, 2, 0};
    int ran = 0;
    for (size_t l = 0; l < 4; l++) {
        quant_status st = quant_set_simd_level(levels[l]);
        if (st == QUANT_ERR_UNSUPPORTED) {
            CHECK(quant_last_error(NULL, 0) > 0);
            continue;
        }
        EXPECT_STATUS(st, QUANT_OK);
        CHECK(quant_simd_level() == levels[l]);
        for (size_t t = 0; t < 3; t++) {
            EXPECT_STATUS(quant_set_threads(threads[t]), QUANT_OK);
            CHECK(quant_threads() == threads[t]);
            memset(&got, 0, sizeof got);
            run_all(&got);
            CHECK(memcmp(&got, &want, sizeof got) == 0);
            ran++;
        }
    }
    CHECK(ran >= 3);
#if defined(__aarch64__)
    CHECK(ran == 6); /* scalar and NEON, 3 thread counts each */
#endif
    EXPECT_STATUS(quant_set_simd_level(QUANT_SIMD_AUTO), QUANT_OK);
    /* AUTO means the CPU's best level. That is the starting level unless the QUANT_SIMD environment
     * variable chose another one at load time; then it is at least a level this CPU accepts. */
    if (getenv("QUANT_SIMD") == NULL) {
        CHECK(quant_simd_level() == best);
    } else {
        int chosen = quant_simd_level();
        CHECK(quant_simd_level_name(chosen) != NULL);
        EXPECT_STATUS(quant_set_simd_level(chosen), QUANT_OK);
    }
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
}

static void test_errors(void) {
    int before = quant_simd_level();
    EXPECT_STATUS(quant_set_simd_level(4), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("QUANT_SIMD");
    EXPECT_STATUS(quant_set_simd_level(-2), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(quant_simd_level() == before);
#if defined(__x86_64__) || defined(_M_X64)
    EXPECT_STATUS(quant_set_simd_level(QUANT_SIMD_NEON), QUANT_ERR_UNSUPPORTED);
    EXPECT_DETAIL_CONTAINS("neon");
#elif defined(__aarch64__)
    EXPECT_STATUS(quant_set_simd_level(QUANT_SIMD_AVX2), QUANT_ERR_UNSUPPORTED);
#endif
    CHECK(quant_simd_level() == before);
    CHECK(quant_simd_level_name(7) == NULL);
    CHECK(quant_simd_level_name(-1) == NULL);
    CHECK(strcmp(quant_simd_level_name(QUANT_SIMD_SCALAR), "scalar") == 0);
    CHECK(strcmp(quant_simd_level_name(QUANT_SIMD_AVX512), "avx512") == 0);

    EXPECT_STATUS(quant_set_threads(3), QUANT_OK);
    EXPECT_STATUS(quant_set_threads(QUANT_MAX_THREADS + 1), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("threads");
    CHECK(quant_threads() == 3);
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);

    /* A NaN at the very end with 2 threads: the outputs zero-filled, never left half written. */
    static int8_t q[ROWS * COLS];
    static float s[ROWS * 5];
    EXPECT_STATUS(quant_set_threads(2), QUANT_OK);
    x[ROWS * COLS - 1] = NAN;
    FILL(q, sizeof q);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_int8_quantize(x, ROWS, COLS, 128, q, ROWS * COLS, s, ROWS * 5), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("155999");
    CHECK(ZEROED(q, sizeof q) && ZEROED(s, sizeof s));
    x[ROWS * COLS - 1] = 0.0f;
    EXPECT_STATUS(quant_set_threads(1), QUANT_OK);
}

int main(void) {
    fill_input();
    test_levels_and_threads();
    test_errors();
    END();
}
