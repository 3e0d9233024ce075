/* The OCP MX formats (quant_mx_*) and NVFP4 (quant_nvfp4_*) through the C ABI: the reference fixtures
 * of tests/data/mx (numpy + ml_dtypes for MX, compressed-tensors for NVFP4) byte for byte, the size
 * queries, the 16-bit sources, and every error path (nothing written on argument errors, outputs
 * zero-filled on NaN or infinity). */
#include <stdint.h>

#include "harness.h"

static uint32_t u32_at(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static const char *const MX_FIXTURES[6] = {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3",
                                           "mxfp6_e3m2", "mxfp4_e2m1", "mxint8"};

static void fixtures(void) {
    size_t in_len = 0;
    unsigned char *in = read_fixture("mx/input_b.bin", &in_len);
    CHECK(in != NULL);
    if (!in) return;
    size_t rows = u32_at(in), cols = u32_at(in + 4), n = rows * cols;
    float *x = (float *)malloc(n * sizeof(float));
    float *y = (float *)malloc(n * sizeof(float));
    memcpy(x, in + 8, n * sizeof(float));
    for (int e = 0; e < 6; e++) {
        char name[64];
        snprintf(name, sizeof name, "mx/%s_b.bin", MX_FIXTURES[e]);
        size_t len = 0;
        unsigned char *want = read_fixture(name, &len);
        CHECK(want != NULL);
        if (!want) continue;
        size_t nc = u32_at(want), ns = u32_at(want + 4);
        CHECK(quant_mx_packed_size(e, rows, cols) == nc);
        CHECK(quant_mx_scale_count(rows, cols) == ns);
        unsigned char *codes = (unsigned char *)malloc(nc), *scales = (unsigned char *)malloc(ns);
        EXPECT_STATUS(quant_mx_quantize(e, x, rows, cols, codes, nc, scales, ns), QUANT_OK);
        CHECK(memcmp(codes, want + 8, nc) == 0);
        CHECK(memcmp(scales, want + 8 + nc, ns) == 0);
        EXPECT_STATUS(quant_mx_dequantize(e, codes, nc, scales, ns, rows, cols, y, n), QUANT_OK);
        CHECK(memcmp(y, want + 8 + nc + ns, n * sizeof(float)) == 0);
        free(codes);
        free(scales);
        free(want);
    }
    size_t len = 0;
    unsigned char *want = read_fixture("mx/nvfp4_b.bin", &len);
    CHECK(want != NULL);
    if (want) {
        size_t nc = u32_at(want), ns = u32_at(want + 4);
        float g_want;
        memcpy(&g_want, want + 8, sizeof g_want);
        CHECK(quant_nvfp4_packed_size(rows, cols) == nc);
        CHECK(quant_nvfp4_scale_count(rows, cols) == ns);
        unsigned char *codes = (unsigned char *)malloc(nc), *scales = (unsigned char *)malloc(ns);
        float g = 0;
        EXPECT_STATUS(quant_nvfp4_quantize(x, rows, cols, codes, nc, scales, ns, &g), QUANT_OK);
        CHECK(memcmp(&g, &g_want, sizeof g) == 0);
        CHECK(memcmp(codes, want + 12, nc) == 0);
        CHECK(memcmp(scales, want + 12 + nc, ns) == 0);
        EXPECT_STATUS(quant_nvfp4_dequantize(codes, nc, scales, ns, g, rows, cols, y, n), QUANT_OK);
        CHECK(memcmp(y, want + 12 + nc + ns, n * sizeof(float)) == 0);
        free(codes);
        free(scales);
        free(want);
    }
    /* Under a global scale given from outside (3x the tensor's own range, as a fused group's larger
       member gives it): compressed-tensors' bytes. */
    want = read_fixture("mx/nvfp4_given3_b.bin", &len);
    CHECK(want != NULL);
    if (want) {
        size_t nc = u32_at(want), ns = u32_at(want + 4);
        float g;
        memcpy(&g, want + 8, sizeof g);
        unsigned char *codes = (unsigned char *)malloc(nc), *scales = (unsigned char *)malloc(ns);
        EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, rows, cols, g, codes, nc, scales, ns),
                      QUANT_OK);
        CHECK(memcmp(codes, want + 12, nc) == 0);
        CHECK(memcmp(scales, want + 12 + nc, ns) == 0);
        EXPECT_STATUS(quant_nvfp4_dequantize(codes, nc, scales, ns, g, rows, cols, y, n), QUANT_OK);
        CHECK(memcmp(y, want + 12 + nc + ns, n * sizeof(float)) == 0);
        free(codes);
        free(scales);
        free(want);
    }
    free(x);
    free(y);
    free(in);
}

static void sizes(void) {
    CHECK(quant_mx_packed_size(QUANT_MX_FP8_E4M3, 3, 37) == 111);
    CHECK(quant_mx_packed_size(QUANT_MX_INT8, 3, 37) == 111);
    CHECK(quant_mx_packed_size(QUANT_MX_FP4_E2M1, 3, 37) == 57);
    CHECK(quant_mx_packed_size(QUANT_MX_FP6_E3M2, 3, 37) == 90);
    CHECK(quant_mx_scale_count(3, 37) == 6);
    CHECK(quant_nvfp4_packed_size(3, 37) == 57);
    CHECK(quant_nvfp4_scale_count(3, 37) == 9);
    char d[256];
    CHECK(quant_mx_packed_size(6, 3, 37) == 0 && quant_last_error(d, sizeof d) > 0);
    CHECK(quant_mx_packed_size(-1, 3, 37) == 0);
    CHECK(quant_mx_packed_size(QUANT_MX_FP8_E5M2, 0, 37) == 0);
    CHECK(quant_mx_packed_size(QUANT_MX_FP6_E2M3, SIZE_MAX, 8) == 0);
    CHECK(quant_mx_scale_count(3, 0) == 0 && quant_last_error(d, sizeof d) > 0);
    CHECK(quant_nvfp4_packed_size(0, 1) == 0);
    CHECK(quant_nvfp4_scale_count(SIZE_MAX, 2) == 0);
}

#define R 2
#define C 40
#define N (R * C)

static void mx_errors(void) {
    float x[N];
    uint16_t h[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 7) - 3.25f;
    quant_f32_to_f16(x, h, N); /* exact: the values are multiples of 0.25 */
    unsigned char p[N], s[R * 2];
    float y[N];

    for (int e = 0; e < 6; e++) {
        size_t np = quant_mx_packed_size(e, R, C), ns = quant_mx_scale_count(R, C);
        /* The f16 source gives the bytes of the same values as floats. */
        unsigned char p2[N], s2[R * 2];
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, p, np, s, ns), QUANT_OK);
        EXPECT_STATUS(quant_mx_quantize_ex(e, QUANT_DTYPE_F16, h, R, C, p2, np, s2, ns), QUANT_OK);
        CHECK(memcmp(p, p2, np) == 0 && memcmp(s, s2, ns) == 0);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, R, C, y, N), QUANT_OK);
        /* Every element within the coarsest grid's step here (MXFP4: 0.5 with amax 3.25). */
        int close = 1;
        for (int i = 0; i < N; i++) close &= fabsf(y[i] - x[i]) <= 0.25f;
        CHECK(close);

        /* Argument errors: nothing written. */
        FILL(p, sizeof p);
        FILL(s, sizeof s);
        EXPECT_STATUS(quant_mx_quantize(6, x, R, C, p, np, s, ns), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_quantize(e, NULL, R, C, p, np, s, ns), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_quantize(e, x, 0, C, p, np, s, ns), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, p, np - 1, s, ns), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, p, np, s, ns - 1), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, NULL, np, s, ns), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, p, np, NULL, ns), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_quantize_ex(e, 3, h, R, C, p, np, s, ns), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_quantize_ex(e, QUANT_DTYPE_BF16, (const unsigned char *)h + 1, R, C, p, np, s, ns),
                      QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_quantize_ex(e, QUANT_DTYPE_F16, NULL, R, C, p, np, s, ns), QUANT_ERR_NULL_POINTER);
        CHECK(UNTOUCHED(p, sizeof p) && UNTOUCHED(s, sizeof s));

        /* Value errors: outputs zero-filled, the detail names the first bad index. */
        float bad[N];
        memcpy(bad, x, sizeof bad);
        bad[45] = NAN;
        bad[50] = INFINITY;
        EXPECT_STATUS(quant_mx_quantize(e, bad, R, C, p, np, s, ns), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("45");
        CHECK(ZEROED(p, np) && ZEROED(s, ns) && UNTOUCHED(p + np, sizeof p - np));
        FILL(p, sizeof p);
        FILL(s, sizeof s);
        uint16_t hbad[N];
        memcpy(hbad, h, sizeof hbad);
        hbad[7] = 0x7C00; /* f16 infinity */
        EXPECT_STATUS(quant_mx_quantize_ex(e, QUANT_DTYPE_F16, hbad, R, C, p, np, s, ns), QUANT_ERR_NON_FINITE);
        CHECK(ZEROED(p, np) && ZEROED(s, ns));

        /* Dequantizer errors: nothing written. */
        EXPECT_STATUS(quant_mx_quantize(e, x, R, C, p, np, s, ns), QUANT_OK);
        FILL(y, sizeof y);
        EXPECT_STATUS(quant_mx_dequantize(7, p, np, s, ns, R, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np - 1, s, ns, R, C, y, N), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns - 1, R, C, y, N), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, R, C, y, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_mx_dequantize(e, NULL, np, s, ns, R, C, y, N), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, NULL, ns, R, C, y, N), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, R, C, NULL, N), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, 0, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, R, C, (float *)((char *)y + 1), N - 1),
                      QUANT_ERR_INVALID_ARGUMENT);
        CHECK(UNTOUCHED(y, sizeof y));
        /* An E8M0 NaN scale decodes its block to NaN. */
        s[0] = 0xFF;
        EXPECT_STATUS(quant_mx_dequantize(e, p, np, s, ns, R, C, y, N), QUANT_OK);
        CHECK(isnan(y[0]) && isnan(y[31]) && !isnan(y[32]));
    }
}

static void nvfp4_errors(void) {
    float x[N];
    uint16_t b[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 11) * 0.5f - 2.0f;
    quant_f32_to_bf16(x, b, N);
    size_t np = quant_nvfp4_packed_size(R, C), ns = quant_nvfp4_scale_count(R, C);
    unsigned char p[N], s[N], p2[N], s2[N];
    float g = 0, g2 = 0, y[N];
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np, s, ns, &g), QUANT_OK);
    CHECK(g == 2688.0f / 3.0f || fabsf(g - 896.0f) < 1e-3f);
    EXPECT_STATUS(quant_nvfp4_quantize_ex(QUANT_DTYPE_BF16, b, R, C, p2, np, s2, ns, &g2), QUANT_OK);
    CHECK(g == g2 && memcmp(p, p2, np) == 0 && memcmp(s, s2, ns) == 0);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, g, R, C, y, N), QUANT_OK);
    /* Within half the top step of E2M1 under the block scale 448 / 896 (0.5 between 2 and 3). */
    int close = 1;
    for (int i = 0; i < N; i++) close &= fabsf(y[i] - x[i]) <= 0.5f;
    CHECK(close);

    FILL(p, sizeof p);
    FILL(s, sizeof s);
    g = 5.0f;
    EXPECT_STATUS(quant_nvfp4_quantize(NULL, R, C, p, np, s, ns, &g), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, 0, p, np, s, ns, &g), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np - 1, s, ns, &g), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np, s, ns - 1, &g), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, NULL, np, s, ns, &g), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np, NULL, ns, &g), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np, s, ns, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_quantize_ex(9, b, R, C, p, np, s, ns, &g), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_quantize_ex(QUANT_DTYPE_F32, (const char *)x + 2, R, C, p, np, s, ns, &g),
                  QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(p, sizeof p) && UNTOUCHED(s, sizeof s) && g == 5.0f);

    float bad[N];
    memcpy(bad, x, sizeof bad);
    bad[9] = -INFINITY;
    EXPECT_STATUS(quant_nvfp4_quantize(bad, R, C, p, np, s, ns, &g), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("9");
    CHECK(ZEROED(p, np) && ZEROED(s, ns) && g == 0.0f);
    b[3] = 0x7FC0; /* bf16 NaN */
    g = 5.0f;
    FILL(p, sizeof p);
    EXPECT_STATUS(quant_nvfp4_quantize_ex(QUANT_DTYPE_BF16, b, R, C, p, np, s, ns, &g), QUANT_ERR_NON_FINITE);
    CHECK(ZEROED(p, np) && g == 0.0f);

    EXPECT_STATUS(quant_nvfp4_quantize(x, R, C, p, np, s, ns, &g), QUANT_OK);
    /* The given-global-scale form: its own global scale gives quant_nvfp4_quantize's bytes. */
    quant_f32_to_bf16(x, b, N);
    float amax = 0;
    for (int i = 0; i < N; i++) amax = fmaxf(amax, fabsf(x[i]));
    CHECK(quant_nvfp4_global_scale(amax) == g);
    CHECK(quant_nvfp4_global_scale(0.0f) > 0);
    CHECK(quant_nvfp4_global_scale(NAN) == 0 && quant_nvfp4_global_scale(-1.0f) == 0);
    CHECK(quant_nvfp4_global_scale(INFINITY) == 0);
    EXPECT_DETAIL_CONTAINS("amax");
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_BF16, b, R, C, g, p2, np, s2, ns), QUANT_OK);
    CHECK(memcmp(p, p2, np) == 0 && memcmp(s, s2, ns) == 0);
    FILL(p2, sizeof p2);
    FILL(s2, sizeof s2);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, R, C, 0.0f, p2, np, s2, ns),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("global");
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, R, C, NAN, p2, np, s2, ns),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F16, b, R, C, INFINITY, p2, np, s2, ns),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, NULL, R, C, g, p2, np, s2, ns),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(9, x, R, C, g, p2, np, s2, ns), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, R, C, g, p2, np - 1, s2, ns),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, R, C, g, p2, np, s2, ns - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, x, R, C, g, NULL, np, s2, ns),
                  QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(p2, sizeof p2) && UNTOUCHED(s2, sizeof s2));
    EXPECT_STATUS(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, bad, R, C, g, p2, np, s2, ns),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("9");
    CHECK(ZEROED(p2, np) && ZEROED(s2, ns));

    FILL(y, sizeof y);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, 0.0f, R, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, NAN, R, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, -g, R, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np - 1, s, ns, g, R, C, y, N), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns - 1, g, R, C, y, N), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, g, R, C, y, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_nvfp4_dequantize(NULL, np, s, ns, g, R, C, y, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, NULL, ns, g, R, C, y, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, g, R, C, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_nvfp4_dequantize(p, np, s, ns, g, 0, C, y, N), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(y, sizeof y));
}

int main(void) {
    fixtures();
    sizes();
    mx_errors();
    nvfp4_errors();
    END();
}
