/* Compares the quant library with ggml itself on many random blocks of every type the library has
 * (scripts/ggml-golden.sh --verify N builds and runs it): quant_ggml_quantize against
 * ggml_quantize_chunk (no importance matrix) byte for byte, quant_ggml_dequantize against ggml's
 * dequantizer bit for bit, and quant_ggml_quantize_weighted against ggml_quantize_chunk with an
 * importance matrix byte for byte. Prints two lines per type; exits 1 when anything differs.
 *
 *   ggml_verify <blocks of 256 values per type>
 *
 * The blocks mix normal values at scales from 1e-7 to 1e3, uniform, sparse (80% zeros), integer and
 * half-integer values, constant blocks, blocks with one outlier, blocks whose 32-value groups
 * each peak a few ulps below a power of two (where MXFP4's exponent, floorf(log2f(amax)), turns), and
 * blocks whose 16-value groups peak around 6 times a rounding midpoint of NVFP4's UE4M3 scales. The
 * weighted comparison cuts them into groups of WGROUP rows of one super-block, each group quantized with its own importance
 * vector (see random_weights).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "quant.h"

static const enum ggml_type TYPES[] = {
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
    GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_IQ4_NL, GGML_TYPE_MXFP4, GGML_TYPE_IQ4_XS, GGML_TYPE_NVFP4,
    GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static uint64_t rng_state = 0x0DDBA11C0FFEEull;

static uint64_t splitmix64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(void) { return ((double)(splitmix64() >> 11) + 1.0) / 9007199254740992.0; }

static float normal(void) {
    double r = sqrt(-2.0 * log(uniform()));
    return (float)(r * cos(6.283185307179586 * uniform()));
}

/* One super-block of 256 values of a randomly chosen kind. */
static void random_block(float *b) {
    const float scale = (float)pow(10.0, -7.0 + 10.0 * uniform());
    const int kind = (int)(splitmix64() % 9);
    for (int i = 0; i < 256; ++i) {
        float v = normal();
        switch (kind) {
        case 1: v = (float)(2.0 * uniform() - 1.0); break;
        case 2: v = uniform() < 0.8 ? 0.0f : v; break;
        case 3: v = roundf(8.0f * v); break;
        case 4: v = roundf(16.0f * v) / 2.0f; break;
        case 5: v = 0.37f; break;
        default: break;
        }
        b[i] = scale * v;
    }
    if (kind == 6) b[splitmix64() % 256] = scale * 40.0f * (uniform() < 0.5 ? -1.0f : 1.0f);
    if (kind == 7) {
        const int e = (int)(splitmix64() % 40) - 24; /* 2^-24 .. 2^15: finite f16 headers (mins) */
        for (int i = 0; i < 256; ++i) b[i] = ldexpf(normal(), e - 3);
        for (int i = 0; i < 256; i += 32) {
            uint32_t bits;
            const float p = ldexpf(1.0f, e);
            memcpy(&bits, &p, sizeof bits);
            bits -= (uint32_t)(splitmix64() % 4);
            float v;
            memcpy(&v, &bits, sizeof v);
            b[i + (int)(splitmix64() % 32)] = uniform() < 0.5 ? -v : v;
        }
    }
    if (kind == 8) {
        /* Each 16-value group peaks a few ulps around 6 times a UE4M3 rounding midpoint (NVFP4's scale
         * is the UE4M3 of amax / 6): a normal one (1 + (2m + 1)/16) * 2^(e - 7), a subnormal one
         * (m + 0.5) / 512, or one past the saturation at 448. */
        for (int i = 0; i < 256; i += 16) {
            const int m = (int)(splitmix64() % 8), e = (int)(splitmix64() % 18) - 1;
            float mid;
            if (e < 1) mid = ((float)m + 0.5f) / 512.0f;
            else if (e > 15) mid = 448.0f * (1.0f + (float)m);
            else mid = ldexpf(1.0f + (float)(2 * m + 1) / 16.0f, e - 7);
            uint32_t bits;
            const float p = 6.0f * mid;
            memcpy(&bits, &p, sizeof bits);
            bits += (uint32_t)(splitmix64() % 5) - 2u;
            float v;
            memcpy(&v, &bits, sizeof v);
            for (int j = 0; j < 16; ++j) b[i + j] = v * (float)uniform() * (uniform() < 0.5 ? -1.0f : 1.0f);
            b[i + (int)(splitmix64() % 16)] = uniform() < 0.5 ? -v : v;
        }
    }
}

/* One importance vector of 256 weights of a randomly chosen kind: uniform in (0, 1], spread over six
 * decades (like squared activations), all equal, sparse (60% zeros), or normal squares. */
static void random_weights(float *w) {
    const int kind = (int)(splitmix64() % 5);
    const float scale = (float)pow(10.0, -3.0 + 6.0 * uniform());
    for (int i = 0; i < 256; ++i) {
        float v;
        switch (kind) {
        case 0: v = (float)uniform(); break;
        case 1: v = (float)pow(10.0, -6.0 * uniform()); break;
        case 2: v = 1.0f; break;
        case 3: v = uniform() < 0.6 ? 0.0f : (float)uniform(); break;
        default: { const float z = normal(); v = z * z; } break;
        }
        w[i] = scale * v;
    }
}

#define WGROUP 16

/* The weighted comparison of one type over the n blocks of x: returns the number of differing blocks
 * and sets *first to the first of them (or -1) and *status to the first non-OK status. */
static long compare_weighted(enum ggml_type type, const float *x, long n, uint8_t *want, uint8_t *got,
                             long *first, quant_status *status) {
    const size_t row = ggml_row_size(type, 256);
    float w[256];
    long bad = 0;
    *first = -1;
    *status = QUANT_OK;
    for (long b0 = 0; b0 < n; b0 += WGROUP) {
        const long rows = n - b0 < WGROUP ? n - b0 : WGROUP;
        random_weights(w);
        ggml_quantize_chunk(type, x + b0 * 256, want, 0, rows, 256, w);
        memset(got, 0, (size_t)rows * row);
        quant_status s = quant_ggml_quantize_weighted((int32_t)type, x + b0 * 256, (size_t)rows, 256, w,
                                                      got, (size_t)rows * row);
        if (s != QUANT_OK && *status == QUANT_OK) *status = s;
        for (long b = 0; b < rows; ++b)
            if (memcmp(got + (size_t)b * row, want + (size_t)b * row, row) != 0) {
                if (*first < 0) *first = b0 + b;
                ++bad;
            }
    }
    return bad;
}

int main(int argc, char **argv) {
    const long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: ggml_verify <blocks of 256 values per type>\n");
        return 2;
    }
    const size_t len = (size_t)n * 256;
    float *x = malloc(len * sizeof(float));
    float *want_deq = malloc(len * sizeof(float));
    float *got_deq = malloc(len * sizeof(float));
    uint8_t *want = malloc((size_t)n * 256 * 34 / 32);
    uint8_t *got = malloc((size_t)n * 256 * 34 / 32);
    if (!x || !want_deq || !got_deq || !want || !got) return 1;
    for (long b = 0; b < n; ++b) random_block(x + b * 256);
    int failed = 0;
    for (size_t t = 0; t < NTYPES; ++t) {
        const enum ggml_type type = TYPES[t];
        /* Rows of one super-block, so that a mismatch names its block. */
        const size_t row = ggml_row_size(type, 256), size = (size_t)n * row;
        ggml_quantize_chunk(type, x, want, 0, n, 256, NULL);
        memset(got, 0, size);
        quant_status s = quant_ggml_quantize((int32_t)type, x, (size_t)n, 256, got, size);
        long bad = 0, first = -1;
        for (long b = 0; b < n; ++b)
            if (memcmp(got + (size_t)b * row, want + (size_t)b * row, row) != 0) {
                if (first < 0) first = b;
                ++bad;
            }
        ggml_get_type_traits(type)->to_float(want, want_deq, (int64_t)len);
        quant_status d = quant_ggml_dequantize((int32_t)type, want, size, got_deq, len);
        long bad_deq = 0;
        for (size_t i = 0; i < len; ++i)
            if (memcmp(&got_deq[i], &want_deq[i], sizeof(float)) != 0) ++bad_deq;
        printf("%s: %ld blocks, status %d/%d, %ld differ in bytes (first %ld), %ld values differ "
               "after dequantization\n",
               ggml_type_name(type), n, (int)s, (int)d, bad, first, bad_deq);
        failed |= s != QUANT_OK || d != QUANT_OK || bad != 0 || bad_deq != 0;
        long wfirst;
        quant_status ws;
        const long wbad = compare_weighted(type, x, n, want, got, &wfirst, &ws);
        printf("%s weighted: %ld blocks, status %d, %ld differ in bytes (first %ld)\n", ggml_type_name(type), n,
               (int)ws, wbad, wfirst);
        failed |= ws != QUANT_OK || wbad != 0;
    }
    free(x);
    free(want_deq);
    free(got_deq);
    free(want);
    free(got);
    return failed;
}
