/* Layouts that engines load: GGML blocks (quant_ggml_*), GPTQ and AWQ checkpoint packing
 * (quant_weight_gptq_sizes, quant_weight_pack_gptq, quant_weight_awq_sizes, quant_weight_pack_awq),
 * and the f16/bf16 source variants (quant_*_quantize_ex, quant_quantize_ex): every export on its
 * success path and on its error paths, checking the status, the detail and untouched outputs. */
#include <stdint.h>

#include "harness.h"

static quant_method method(quant_method_kind kind, uint32_t bits, uint32_t group) {
    quant_method m;
    m.kind = kind;
    m.bits = bits;
    m.group_size = group;
    m.alpha = 0.0;
    return m;
}

/* A deterministic matrix with values in about [-0.4, 0.4]. */
static void fill_matrix(float *w, size_t n, unsigned seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * 0.8f;
    }
}

static size_t detail_len(void) { return quant_last_error(NULL, 0); }

/* ------------------------------------------------------------------------------------------- */

static void test_ggml_sizes(void) {
    const int32_t types[16] = {QUANT_GGML_TYPE_Q4_0, QUANT_GGML_TYPE_Q4_1, QUANT_GGML_TYPE_Q5_0,
                               QUANT_GGML_TYPE_Q5_1, QUANT_GGML_TYPE_Q8_0, QUANT_GGML_TYPE_Q2_K,
                               QUANT_GGML_TYPE_Q3_K, QUANT_GGML_TYPE_Q4_K, QUANT_GGML_TYPE_Q5_K,
                               QUANT_GGML_TYPE_Q6_K, QUANT_GGML_TYPE_IQ4_NL, QUANT_GGML_TYPE_IQ4_XS,
                               QUANT_GGML_TYPE_TQ1_0, QUANT_GGML_TYPE_TQ2_0,
                               QUANT_GGML_TYPE_MXFP4, QUANT_GGML_TYPE_NVFP4};
    const size_t blocks[16] = {32, 32, 32, 32, 32, 256, 256, 256, 256, 256, 32, 256, 256, 256, 32, 64};
    const size_t bytes[16] = {18, 20, 22, 24, 34, 84, 110, 144, 176, 210, 18, 136, 54, 66, 17, 36};
    const char *names[16] = {"q4_0", "q4_1", "q5_0",  "q5_1",  "q8_0",  "q2_K",  "q3_K",  "q4_K",
                             "q5_K", "q6_K", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4", "nvfp4"};
    for (int i = 0; i < 16; i++) {
        CHECK(quant_ggml_block_size(types[i]) == blocks[i]);
        CHECK(quant_ggml_type_size(types[i]) == bytes[i]);
        CHECK(quant_ggml_row_size(types[i], 4096) == 4096 / blocks[i] * bytes[i]);
        CHECK(quant_ggml_row_size(types[i], 0) == 0);
        const char *name = quant_ggml_type_name(types[i]);
        CHECK(name != NULL && strcmp(name, names[i]) == 0);
    }
    CHECK(QUANT_GGML_TYPE_Q4_0 == 2 && QUANT_GGML_TYPE_Q8_0 == 8 && QUANT_GGML_TYPE_Q6_K == 14);
    CHECK(QUANT_GGML_TYPE_Q2_K == 10 && QUANT_GGML_TYPE_Q3_K == 11 && QUANT_GGML_TYPE_Q5_K == 13);
    CHECK(QUANT_GGML_TYPE_IQ4_NL == 20 && QUANT_GGML_TYPE_MXFP4 == 39);
    CHECK(QUANT_GGML_TYPE_IQ4_XS == 23 && QUANT_GGML_TYPE_NVFP4 == 40);
    CHECK(QUANT_GGML_TYPE_TQ1_0 == 34 && QUANT_GGML_TYPE_TQ2_0 == 35);
    /* Unknown types (F32 = 0, F16 = 1, Q8_1 = 9, negative) and rows that are not whole blocks. */
    const int32_t unknown[4] = {0, 1, 9, -1};
    for (int i = 0; i < 4; i++) {
        CHECK(quant_ggml_block_size(unknown[i]) == 0 && detail_len() > 0);
        CHECK(quant_ggml_type_size(unknown[i]) == 0 && detail_len() > 0);
        CHECK(quant_ggml_row_size(unknown[i], 64) == 0 && detail_len() > 0);
        CHECK(quant_ggml_type_name(unknown[i]) == NULL && detail_len() > 0);
    }
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_Q4_0, 33) == 0);
    EXPECT_DETAIL_CONTAINS("multiple");
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_Q4_K, 384) == 0);
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_Q2_K, 384) == 0);
    EXPECT_DETAIL_CONTAINS("q2_K");
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_IQ4_XS, 384) == 0);
    EXPECT_DETAIL_CONTAINS("iq4_xs");
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_NVFP4, 96) == 0);
    EXPECT_DETAIL_CONTAINS("nvfp4");
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_TQ1_0, 384) == 0);
    EXPECT_DETAIL_CONTAINS("tq1_0");
    CHECK(quant_ggml_row_size(QUANT_GGML_TYPE_Q8_0, SIZE_MAX / 32 * 32) == 0);
    EXPECT_DETAIL_CONTAINS("overflows");
}

/* Byte-exactness through the ABI: the gguf-py fixture of a real MiniLM slice (16 x 384). */
static void test_ggml_fixture(void) {
    size_t xlen = 0, qlen = 0, dlen = 0;
    float *x = (float *)read_fixture("ggml/real.f32", &xlen);
    uint8_t *want = (uint8_t *)read_fixture("ggml/real.q4_1.bin", &qlen);
    float *deq = (float *)read_fixture("ggml/real.q4_1.deq.f32", &dlen);
    CHECK(x && want && deq);
    if (!(x && want && deq)) return;
    enum { ROWS = 16, COLS = 384 };
    CHECK(xlen == ROWS * COLS * 4);
    size_t size = ROWS * quant_ggml_row_size(QUANT_GGML_TYPE_Q4_1, COLS);
    CHECK(size == qlen);
    uint8_t *q = (uint8_t *)malloc(size + 1);
    q[size] = 0x5A;
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_1, x, ROWS, COLS, q, size + 1), QUANT_OK);
    CHECK(memcmp(q, want, size) == 0);
    CHECK(q[size] == 0x5A);
    float *back = (float *)malloc(ROWS * COLS * sizeof(float));
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_1, q, size, back, ROWS * COLS), QUANT_OK);
    CHECK(memcmp(back, deq, dlen) == 0);
    free(back);
    free(q);
    free(x);
    free(want);
    free(deq);
}

/* The golden fixture ggml/golden/real.<type><suffix> (type as in its file names, "q4_k"). */
static void *read_golden_real(const char *type, const char *suffix, size_t *len) {
    char name[128];
    snprintf(name, sizeof name, "ggml/golden/real.%s%s", type, suffix);
    return read_fixture(name, len);
}

enum { GOLDEN_ROWS = 2, GOLDEN_COLS = 1536 };

/* The golden real rows (GOLDEN_ROWS x GOLDEN_COLS) and their imatrix (one weight per column); false
 * (with a failed check, nothing left allocated) when a file is missing or of another size. */
static int read_golden_real_inputs(float **x, float **w) {
    size_t xlen = 0, wlen = 0;
    *x = (float *)read_fixture("ggml/golden/real.f32", &xlen);
    *w = (float *)read_fixture("ggml/golden/real.imatrix.f32", &wlen);
    const int ok = *x && *w && xlen == GOLDEN_ROWS * GOLDEN_COLS * 4 && wlen == GOLDEN_COLS * 4;
    CHECK(ok);
    if (!ok) {
        free(*x);
        free(*w);
    }
    return ok;
}

/* One type against its golden fixtures on the golden rows x (imatrix w): ggml_quantize_chunk's bytes
 * (written without touching the byte after them), its decoded values, and its bytes under the
 * imatrix, which equal the plain ones exactly when the type ignores importance weights. */
static void check_golden_real(int32_t type, const char *file, const float *x, const float *w,
                              int ignores_weights) {
    enum { ROWS = GOLDEN_ROWS, COLS = GOLDEN_COLS, N = ROWS * COLS };
    size_t qlen = 0, dlen = 0, wqlen = 0;
    uint8_t *want = (uint8_t *)read_golden_real(file, ".bin", &qlen);
    float *deq = (float *)read_golden_real(file, ".deq.f32", &dlen);
    uint8_t *wwant = (uint8_t *)read_golden_real(file, ".imatrix.bin", &wqlen);
    const size_t size = ROWS * quant_ggml_row_size(type, COLS);
    CHECK(want && deq && wwant && size == qlen && size == wqlen && dlen == N * 4);
    if (want && deq && wwant && size == qlen && size == wqlen && dlen == N * 4) {
        uint8_t *q = (uint8_t *)malloc(size + 1);
        float *back = (float *)malloc(N * sizeof(float));
        q[size] = 0x5A;
        EXPECT_STATUS(quant_ggml_quantize(type, x, ROWS, COLS, q, size + 1), QUANT_OK);
        CHECK(memcmp(q, want, size) == 0 && q[size] == 0x5A);
        EXPECT_STATUS(quant_ggml_dequantize(type, q, size, back, N), QUANT_OK);
        CHECK(memcmp(back, deq, dlen) == 0);
        memset(q, 0, size);
        EXPECT_STATUS(quant_ggml_quantize_weighted(type, x, ROWS, COLS, w, q, size), QUANT_OK);
        CHECK(memcmp(q, wwant, size) == 0);
        CHECK((memcmp(wwant, want, size) == 0) == ignores_weights);
        free(back);
        free(q);
    }
    free(want);
    free(deq);
    free(wwant);
}

/* Byte-exactness with ggml itself through the ABI: the new K-quants of the golden fixtures that
 * ggml_quantize_chunk wrote (tests/data/ggml/golden), quantized from float and from f16, and decoded. */
static void test_ggml_golden_k_quants(void) {
    const int32_t types[3] = {QUANT_GGML_TYPE_Q2_K, QUANT_GGML_TYPE_Q3_K, QUANT_GGML_TYPE_Q5_K};
    const char *files[3] = {"q2_k", "q3_k", "q5_k"};
    enum { ROWS = 2, COLS = 1536, N = ROWS * COLS };
    size_t xlen = 0;
    float *x = (float *)read_fixture("ggml/golden/real.f32", &xlen);
    CHECK(x && xlen == N * 4);
    if (!x) return;
    for (int t = 0; t < 3; t++) {
        size_t qlen = 0, dlen = 0;
        uint8_t *want = (uint8_t *)read_golden_real(files[t], ".bin", &qlen);
        float *deq = (float *)read_golden_real(files[t], ".deq.f32", &dlen);
        CHECK(want && deq);
        if (!(want && deq)) continue;
        const size_t size = ROWS * quant_ggml_row_size(types[t], COLS);
        CHECK(size == qlen && dlen == N * 4);
        uint8_t *q = (uint8_t *)malloc(size + 1);
        q[size] = 0x5A;
        EXPECT_STATUS(quant_ggml_quantize(types[t], x, ROWS, COLS, q, size + 1), QUANT_OK);
        CHECK(memcmp(q, want, size) == 0 && q[size] == 0x5A);
        float *back = (float *)malloc(N * sizeof(float));
        EXPECT_STATUS(quant_ggml_dequantize(types[t], q, size, back, N), QUANT_OK);
        CHECK(memcmp(back, deq, dlen) == 0);
        /* An f16 source gives the bytes of its values as float. */
        uint16_t *h = (uint16_t *)malloc(N * sizeof(uint16_t));
        EXPECT_STATUS(quant_f32_to_f16(x, h, N), QUANT_OK);
        EXPECT_STATUS(quant_f16_to_f32(h, back, N), QUANT_OK);
        uint8_t *q16 = (uint8_t *)malloc(size);
        EXPECT_STATUS(quant_ggml_quantize_ex(types[t], QUANT_DTYPE_F16, h, ROWS, COLS, q16, size), QUANT_OK);
        EXPECT_STATUS(quant_ggml_quantize(types[t], back, ROWS, COLS, q, size), QUANT_OK);
        CHECK(memcmp(q16, q, size) == 0);
        free(q16);
        free(h);
        free(back);
        free(q);
        free(want);
        free(deq);
    }
    free(x);
}

/* The importance-weighted path through the ABI: ggml_quantize_chunk's bytes with MiniLM's imatrix
 * (tests/data/ggml/golden/real.<type>.imatrix.bin) for a 32-value type and a K-quant, NULL weights
 * as quant_ggml_quantize, and every error path (nothing written on any). */
static void test_ggml_weighted(void) {
    const int32_t types[2] = {QUANT_GGML_TYPE_Q4_1, QUANT_GGML_TYPE_Q4_K};
    const char *files[2] = {"q4_1", "q4_k"};
    enum { ROWS = GOLDEN_ROWS, COLS = GOLDEN_COLS, N = ROWS * COLS };
    float *x = NULL, *w = NULL;
    if (!read_golden_real_inputs(&x, &w)) return;
    for (int t = 0; t < 2; t++) {
        size_t qlen = 0, rlen = 0;
        uint8_t *want = (uint8_t *)read_golden_real(files[t], ".imatrix.bin", &qlen);
        uint8_t *plain = (uint8_t *)read_golden_real(files[t], ".bin", &rlen);
        CHECK(want && plain);
        if (!(want && plain)) continue;
        const size_t size = ROWS * quant_ggml_row_size(types[t], COLS);
        CHECK(size == qlen && size == rlen);
        uint8_t *q = (uint8_t *)malloc(size + 1);
        q[size] = 0x5A;
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, w, q, size + 1), QUANT_OK);
        CHECK(memcmp(q, want, size) == 0 && q[size] == 0x5A);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, NULL, q, size), QUANT_OK);
        CHECK(memcmp(q, plain, size) == 0);

        /* Errors: nothing written. */
        FILL(q, size + 1);
        float *bad = (float *)malloc(COLS * sizeof(float));
        memcpy(bad, w, COLS * sizeof(float));
        bad[700] = -1.0f;
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, bad, q, size), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("quant_weights[700]");
        bad[700] = NAN;
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, bad, q, size), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("700");
        bad[700] = INFINITY;
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, bad, q, size), QUANT_ERR_NON_FINITE);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, w, q, size - 1), QUANT_ERR_BUFFER_TOO_SMALL);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, 1000, w, q, size), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, 0, COLS, w, q, size), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], NULL, ROWS, COLS, w, q, size), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_ggml_quantize_weighted(types[t], x, ROWS, COLS, w, NULL, size), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_ggml_quantize_weighted(1, x, ROWS, COLS, w, q, size), QUANT_ERR_INVALID_ARGUMENT);
        CHECK(UNTOUCHED(q, size + 1));
        free(bad);
        free(q);
        free(want);
        free(plain);
    }
    free(x);
    free(w);
}

/* IQ4_NL, IQ4_XS, MXFP4 and NVFP4 through the ABI: ggml_quantize_chunk's bytes of the real golden
 * rows without and with MiniLM's imatrix (MXFP4 and NVFP4 ignore it, as ggml does), ggml's decoded
 * values, and the overflow errors (IQ4_NL's and IQ4_XS's f16 scale; an MXFP4 exponent byte under
 * which a code decodes to infinity) or NVFP4's saturation. */
static void test_ggml_non_linear(void) {
    const int32_t types[4] = {QUANT_GGML_TYPE_IQ4_NL, QUANT_GGML_TYPE_IQ4_XS, QUANT_GGML_TYPE_MXFP4,
                              QUANT_GGML_TYPE_NVFP4};
    const char *files[4] = {"iq4_nl", "iq4_xs", "mxfp4", "nvfp4"};
    float *x = NULL, *w = NULL;
    if (!read_golden_real_inputs(&x, &w)) return;
    for (int t = 0; t < 4; t++)
        check_golden_real(types[t], files[t], x, w,
                          types[t] == QUANT_GGML_TYPE_MXFP4 || types[t] == QUANT_GGML_TYPE_NVFP4);
    free(x);
    free(w);

    /* IQ4_NL: a value whose block's f16 scale overflows, in block 1; nothing written. */
    float big[64];
    fill_matrix(big, 64, 5);
    big[40] = -1e10f;
    uint8_t dst[2 * 18 + 4];
    FILL(dst, sizeof dst);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_IQ4_NL, big, 2, 32, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("block 1");
    CHECK(UNTOUCHED(dst, sizeof dst));
    /* MXFP4 takes the same values (a power-of-two scale has no f16 to overflow). */
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_MXFP4, big, 2, 32, dst, sizeof dst), QUANT_OK);
    /* MXFP4 records: exponent 253 with codes of magnitude 6 decodes; with 12 (code 7) it would be
     * infinite: refused, naming the block, nothing written. */
    uint8_t rec[2 * 17];
    memset(rec, 0x55, sizeof rec);
    rec[0] = 253;
    rec[17] = 253;
    rec[17 + 5] = 0x07;
    float out[64];
    FILL(out, sizeof out);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_MXFP4, rec, sizeof rec, out, 64), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("block 1");
    CHECK(UNTOUCHED(out, sizeof out));
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_MXFP4, rec, 17, out, 32), QUANT_OK);
    CHECK(out[0] == ldexpf(6.0f, 125) && isfinite(out[31]));

    /* IQ4_XS: a super-block scale (the largest block scale / 32) that overflows f16, in super-block
     * 1; nothing written, with or without weights. */
    float xs[512], ones[512];
    fill_matrix(xs, 512, 6);
    for (int i = 0; i < 512; i++) ones[i] = 1.0f;
    xs[300] = -1e10f;
    uint8_t xdst[2 * 136];
    FILL(xdst, sizeof xdst);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_IQ4_XS, xs, 1, 512, xdst, sizeof xdst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("block 1");
    EXPECT_STATUS(quant_ggml_quantize_weighted(QUANT_GGML_TYPE_IQ4_XS, xs, 1, 512, ones, xdst, sizeof xdst),
                  QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(xdst, sizeof xdst));
    /* NVFP4 takes the same values: its UE4M3 scales saturate at 448, so -1e10 is written as
     * -6 * 448; and every record decodes (all 0xFF: scale 480, halved 240, times code 15's -12). */
    uint8_t ndst[8 * 36];
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_NVFP4, xs, 1, 512, ndst, sizeof ndst), QUANT_OK);
    CHECK(ndst[4 * 36 + 2] == 0x7E);
    float nout[512];
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_NVFP4, ndst, sizeof ndst, nout, 512), QUANT_OK);
    CHECK(nout[300] == -2688.0f);
    memset(ndst, 0xFF, 36);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_NVFP4, ndst, 36, nout, 64), QUANT_OK);
    CHECK(nout[0] == -2880.0f && nout[63] == -2880.0f);
}

/* TQ1_0 and TQ2_0 through the ABI: ggml_quantize_chunk's bytes of the real golden rows, the same
 * with MiniLM's imatrix (ggml ignores it for these types), ggml's decoded values; a ternary row comes
 * back exactly; the errors of a scale that overflows f16 (quantizing) or is NaN (decoding). */
static void test_ggml_ternary(void) {
    const int32_t types[2] = {QUANT_GGML_TYPE_TQ1_0, QUANT_GGML_TYPE_TQ2_0};
    const char *files[2] = {"tq1_0", "tq2_0"};
    const size_t scale_at[2] = {52, 64};
    float *x = NULL, *w = NULL;
    if (!read_golden_real_inputs(&x, &w)) return;
    for (int t = 0; t < 2; t++) {
        check_golden_real(types[t], files[t], x, w, 1);

        /* Values -0.5, 0 and 0.5 (scale 0.5, exact in f16) decode to themselves. */
        float tern[512], out[512];
        for (int i = 0; i < 512; i++) tern[i] = 0.5f * (float)((i * 7 + i / 3) % 3 - 1);
        uint8_t rec[2 * 66 + 1];
        EXPECT_STATUS(quant_ggml_quantize(types[t], tern, 2, 256, rec, sizeof rec), QUANT_OK);
        EXPECT_STATUS(quant_ggml_dequantize(types[t], rec, sizeof rec, out, 512), QUANT_OK);
        CHECK(memcmp(out, tern, sizeof tern) == 0);
        /* A NaN f16 scale in record 1: refused, naming the block, nothing written. */
        const size_t ts = quant_ggml_type_size(types[t]);
        rec[ts + scale_at[t]] = 0x01;
        rec[ts + scale_at[t] + 1] = 0x7E;
        FILL(out, sizeof out);
        EXPECT_STATUS(quant_ggml_dequantize(types[t], rec, 2 * ts, out, 512), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("block 1");
        CHECK(UNTOUCHED(out, sizeof out));
        /* A largest magnitude beyond f16 in the second block: refused, nothing written. */
        tern[300] = 1e6f;
        FILL(rec, sizeof rec);
        EXPECT_STATUS(quant_ggml_quantize(types[t], tern, 1, 512, rec, sizeof rec), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("block 1");
        CHECK(UNTOUCHED(rec, sizeof rec));
        /* Rows that are not whole blocks, and a short destination. */
        EXPECT_STATUS(quant_ggml_quantize(types[t], tern, 2, 128, rec, sizeof rec), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_ggml_quantize(types[t], tern, 2, 256, rec, 2 * ts - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    }
    free(x);
    free(w);
}

/* The error paths of the K-quants whose records put their f16 headers at the end (Q2_K: d and dmin
 * at 80 and 82, Q3_K: d at 108) or beside Q4_K's (Q5_K: 0 and 2). */
static void test_ggml_k_quant_errors(void) {
    const int32_t types[3] = {QUANT_GGML_TYPE_Q2_K, QUANT_GGML_TYPE_Q3_K, QUANT_GGML_TYPE_Q5_K};
    const size_t inf_at[3] = {82, 108, 2};
    float x[512];
    fill_matrix(x, 512, 21);
    for (int t = 0; t < 3; t++) {
        const size_t ts = quant_ggml_type_size(types[t]);
        uint8_t dst[2 * 176 + 8];
        FILL(dst, sizeof dst);
        EXPECT_STATUS(quant_ggml_quantize(types[t], x, 2, 128, dst, sizeof dst), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("256");
        EXPECT_STATUS(quant_ggml_quantize(types[t], x, 2, 256, dst, 2 * ts - 1), QUANT_ERR_BUFFER_TOO_SMALL);
        float bad[512];
        memcpy(bad, x, sizeof bad);
        bad[300] = INFINITY;
        EXPECT_STATUS(quant_ggml_quantize(types[t], bad, 2, 256, dst, sizeof dst), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("300");
        CHECK(UNTOUCHED(dst, sizeof dst));
        EXPECT_STATUS(quant_ggml_quantize(types[t], x, 2, 256, dst, 2 * ts), QUANT_OK);
        CHECK(UNTOUCHED(dst + 2 * ts, sizeof dst - 2 * ts));

        float out[512];
        FILL(out, sizeof out);
        EXPECT_STATUS(quant_ggml_dequantize(types[t], dst, 2 * ts, out, 384), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_ggml_dequantize(types[t], dst, 2 * ts - 1, out, 512), QUANT_ERR_BUFFER_TOO_SMALL);
        uint8_t inf_rec[2 * 176];
        memcpy(inf_rec, dst, 2 * ts);
        inf_rec[ts + inf_at[t]] = 0x00;
        inf_rec[ts + inf_at[t] + 1] = 0xFC; /* block 1: -inf */
        EXPECT_STATUS(quant_ggml_dequantize(types[t], inf_rec, 2 * ts, out, 512), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("block 1");
        CHECK(UNTOUCHED(out, sizeof out));
        EXPECT_STATUS(quant_ggml_dequantize(types[t], dst, 2 * ts, out, 512), QUANT_OK);
        /* Values of about [-0.4, 0.4]: 2-bit codes come back within 0.2, the others within 0.1. */
        const float tol = types[t] == QUANT_GGML_TYPE_Q2_K ? 0.2f : 0.1f;
        for (int i = 0; i < 512; i++) CHECK(fabsf(out[i] - x[i]) < tol);
    }
}

static void test_ggml_errors(void) {
    enum { N = 64 };
    float x[N];
    fill_matrix(x, N, 3);
    uint8_t dst[2 * 34 + 8];
    const size_t need = 2 * 18; /* Q4_0, 2 rows of 32 */
    FILL(dst, sizeof dst);
    EXPECT_STATUS(quant_ggml_quantize(99, x, 2, 32, dst, sizeof dst), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(dst, sizeof dst));
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, NULL, 2, 32, dst, sizeof dst),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 2, 32, NULL, need), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 0, 32, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 2, 0, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, SIZE_MAX / 2, 32, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 4, 16, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("multiple");
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 2, 32, dst, need - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    float bad[N];
    memcpy(bad, x, sizeof bad);
    bad[37] = NAN;
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, bad, 2, 32, dst, sizeof dst),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("37");
    bad[37] = 1e7f; /* d = 1e7 / 8 does not fit an f16 */
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, bad, 2, 32, dst, sizeof dst),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("block 1");
    CHECK(UNTOUCHED(dst, sizeof dst));
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x, 2, 32, dst, need), QUANT_OK);

    /* Dequantization errors. */
    float out[N];
    FILL(out, sizeof out);
    EXPECT_STATUS(quant_ggml_dequantize(99, dst, need, out, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, dst, need, out, 0),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, dst, need, out, 48),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, NULL, need, out, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, dst, need, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, dst, need - 1, out, N),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    uint8_t inf_rec[36];
    memcpy(inf_rec, dst, sizeof inf_rec);
    inf_rec[18] = 0x00;
    inf_rec[19] = 0x7C; /* block 1: d = +inf */
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, inf_rec, 36, out, N), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("block 1");
    CHECK(UNTOUCHED(out, sizeof out));
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_0, dst, need, out, N), QUANT_OK);
    for (int i = 0; i < N; i++) CHECK(fabsf(out[i] - x[i]) < 0.06f);

    /* K-quants through the ABI: a round trip of one super-block. */
    float big[512];
    fill_matrix(big, 512, 9);
    uint8_t k4[2 * 144], k6[2 * 210];
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_K, big, 2, 256, k4, sizeof k4), QUANT_OK);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q6_K, big, 1, 512, k6, sizeof k6), QUANT_OK);
    float b4[512], b6[512];
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q4_K, k4, sizeof k4, b4, 512), QUANT_OK);
    EXPECT_STATUS(quant_ggml_dequantize(QUANT_GGML_TYPE_Q6_K, k6, sizeof k6, b6, 512), QUANT_OK);
    double e4 = 0, e6 = 0;
    for (int i = 0; i < 512; i++) {
        e4 += (double)(b4[i] - big[i]) * (b4[i] - big[i]);
        e6 += (double)(b6[i] - big[i]) * (b6[i] - big[i]);
    }
    CHECK(e6 < e4 && e4 < 512 * 0.05 * 0.05);
    EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_K, big, 4, 128, k4, sizeof k4),
                  QUANT_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------------------------------------- */
/* GPTQ / AWQ packing of an INT4 weight (the GPTQ and AWQ handles come from the calibrated methods). */

static quant_weight *int4_weight(size_t rows, size_t cols, size_t group, float scale_by) {
    float *w = (float *)malloc(rows * cols * sizeof(float));
    fill_matrix(w, rows * cols, 11);
    for (size_t i = 0; i < rows * cols; i++) w[i] *= scale_by;
    quant_method m = method(QUANT_INT4_ASYMMETRIC, 4, (uint32_t)group);
    quant_weight *q = NULL;
    quant_status s = quant_quantize(&m, NULL, w, rows, cols, NULL, &q);
    CHECK(s == QUANT_OK);
    free(w);
    return q;
}

static float f16_to_float(uint16_t h) {
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

static void test_gptq(void) {
    enum { R = 32, C = 64, G = 32, NG = C / G };
    quant_weight *q = int4_weight(R, C, G, 1.0f);
    size_t lw = 0, lz = 0, ls = 0, lg = 0;
    EXPECT_STATUS(quant_weight_gptq_sizes(q, &lw, &lz, &ls, &lg), QUANT_OK);
    CHECK(lw == C * 4 / 32 * R && lz == NG * R * 4 / 32 && ls == NG * R && lg == C);
    int32_t qweight[C / 8 * R + 1], qzeros[NG * R / 8 + 1], g_idx[C + 1];
    uint16_t scales[NG * R + 1];
    for (uint32_t version = 1; version <= 2; version++) {
        FILL(qweight, sizeof qweight);
        FILL(qzeros, sizeof qzeros);
        FILL(scales, sizeof scales);
        FILL(g_idx, sizeof g_idx);
        EXPECT_STATUS(quant_weight_pack_gptq(q, version, qweight, lw + 1, qzeros, lz + 1, scales, ls + 1,
                                             g_idx, lg + 1),
                      QUANT_OK);
        CHECK(UNTOUCHED(&qweight[lw], 4) && UNTOUCHED(&qzeros[lz], 4) && UNTOUCHED(&scales[ls], 2) &&
              UNTOUCHED(&g_idx[lg], 4));
        /* Unpack as an engine does and compare with quant_weight_dequantize. */
        float want[R * C];
        EXPECT_STATUS(quant_weight_dequantize(q, want, R * C), QUANT_OK);
        size_t nz = 0;
        const float *zp = quant_weight_zero_points(q, &nz);
        const float *sc = quant_weight_scales(q, NULL);
        int ok = 1;
        for (size_t r = 0; r < R; r++) {
            for (size_t j = 0; j < C; j++) {
                uint32_t word = (uint32_t)qweight[(j / 8) * R + r];
                int code = (int)((word >> (4 * (j % 8))) & 15);
                size_t g = (size_t)g_idx[j];
                uint32_t zword = (uint32_t)qzeros[g * (R / 8) + r / 8];
                int z = (int)((zword >> (4 * (r % 8))) & 15) + (version == 1 ? 1 : 0);
                float s = f16_to_float(scales[g * R + r]);
                float got = (float)(code - z) * s;
                float exact = want[r * C + j];
                float tol = 15.0f * fabsf(sc[r * NG + g] - s) + 1e-7f;
                int z_true = (int)zp[r * NG + g];
                if (version == 1 && z_true == 0) continue; /* v1 reads a zero point of 0 as 1 */
                if (fabsf(got - exact) > tol || z != z_true || g != j / G) ok = 0;
            }
        }
        CHECK(ok);
    }

    /* Errors. */
    FILL(qweight, sizeof qweight);
    FILL(qzeros, sizeof qzeros);
    FILL(scales, sizeof scales);
    FILL(g_idx, sizeof g_idx);
    size_t sentinel = 77;
    EXPECT_STATUS(quant_weight_gptq_sizes(NULL, &lw, &lz, &ls, &lg), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_gptq_sizes(q, NULL, &lz, &ls, &lg), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_gptq_sizes(q, &sentinel, NULL, &ls, &lg), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_gptq_sizes(q, &sentinel, &lz, NULL, &lg), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_gptq_sizes(q, &sentinel, &lz, &ls, NULL), QUANT_ERR_NULL_POINTER);
    CHECK(sentinel == 77);
    EXPECT_STATUS(quant_weight_pack_gptq(NULL, 2, qweight, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, NULL, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, NULL, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, qzeros, lz, NULL, ls, g_idx, lg),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, qzeros, lz, scales, ls, NULL, lg),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 3, qweight, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 0, qweight, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw - 1, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, qzeros, lz - 1, scales, ls, g_idx, lg),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, qzeros, lz, scales, ls - 1, g_idx, lg),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_pack_gptq(q, 2, qweight, lw, qzeros, lz, scales, ls, g_idx, lg - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    /* A weight GPTQ cannot hold: INT8 codes; 12 columns (48 bits, not whole words); f16-overflowing
     * scales. */
    float w8[R * C];
    fill_matrix(w8, R * C, 4);
    quant_method m8 = method(QUANT_INT8_SYMMETRIC, 8, 0);
    quant_weight *q8 = NULL;
    EXPECT_STATUS(quant_quantize(&m8, NULL, w8, R, C, NULL, &q8), QUANT_OK);
    EXPECT_STATUS(quant_weight_gptq_sizes(q8, &lw, &lz, &ls, &lg), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_weight_pack_gptq(q8, 2, qweight, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_INVALID_ARGUMENT);
    quant_weight *narrow = int4_weight(8, 12, 4, 1.0f);
    EXPECT_STATUS(quant_weight_gptq_sizes(narrow, &lw, &lz, &ls, &lg), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("multiple");
    quant_weight *huge = int4_weight(R, C, G, 1e7f);
    EXPECT_STATUS(quant_weight_gptq_sizes(huge, &lw, &lz, &ls, &lg), QUANT_OK);
    EXPECT_STATUS(quant_weight_pack_gptq(huge, 2, qweight, lw, qzeros, lz, scales, ls, g_idx, lg),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("f16");
    CHECK(UNTOUCHED(qweight, sizeof qweight) && UNTOUCHED(qzeros, sizeof qzeros) &&
          UNTOUCHED(scales, sizeof scales) && UNTOUCHED(g_idx, sizeof g_idx));
    quant_weight_free(huge);
    quant_weight_free(narrow);
    quant_weight_free(q8);
    quant_weight_free(q);
}

static void test_awq(void) {
    enum { R = 16, C = 64, G = 32, NG = C / G };
    quant_weight *q = int4_weight(R, C, G, 1.0f);
    size_t lw = 0, lz = 0, ls = 0;
    EXPECT_STATUS(quant_weight_awq_sizes(q, &lw, &lz, &ls), QUANT_OK);
    CHECK(lw == C * R / 8 && lz == NG * R / 8 && ls == NG * R);
    int32_t qweight[C * R / 8 + 1], qzeros[NG * R / 8 + 1];
    uint16_t scales[NG * R + 1];
    FILL(qweight, sizeof qweight);
    FILL(qzeros, sizeof qzeros);
    FILL(scales, sizeof scales);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw + 1, qzeros, lz + 1, scales, ls + 1), QUANT_OK);
    CHECK(UNTOUCHED(&qweight[lw], 4) && UNTOUCHED(&qzeros[lz], 4) && UNTOUCHED(&scales[ls], 2));
    /* AutoAWQ's order: nibble i of word [j][c] is output 8c + order[i]. */
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    float want[R * C];
    EXPECT_STATUS(quant_weight_dequantize(q, want, R * C), QUANT_OK);
    const float *sc = quant_weight_scales(q, NULL);
    int ok = 1;
    for (size_t j = 0; j < C; j++) {
        for (size_t c = 0; c < R / 8; c++) {
            uint32_t word = (uint32_t)qweight[j * (R / 8) + c];
            uint32_t zword = (uint32_t)qzeros[(j / G) * (R / 8) + c];
            for (int i = 0; i < 8; i++) {
                size_t r = 8 * c + (size_t)order[i];
                int code = (int)((word >> (4 * i)) & 15), z = (int)((zword >> (4 * i)) & 15);
                float s = f16_to_float(scales[(j / G) * R + r]);
                float tol = 15.0f * fabsf(sc[r * NG + j / G] - s) + 1e-7f;
                if (fabsf((float)(code - z) * s - want[r * C + j]) > tol) ok = 0;
            }
        }
    }
    CHECK(ok);

    /* Errors. */
    FILL(qweight, sizeof qweight);
    FILL(qzeros, sizeof qzeros);
    FILL(scales, sizeof scales);
    size_t sentinel = 77;
    EXPECT_STATUS(quant_weight_awq_sizes(NULL, &lw, &lz, &ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_awq_sizes(q, NULL, &lz, &ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_awq_sizes(q, &sentinel, NULL, &ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_awq_sizes(q, &sentinel, &lz, NULL), QUANT_ERR_NULL_POINTER);
    CHECK(sentinel == 77);
    EXPECT_STATUS(quant_weight_pack_awq(NULL, qweight, lw, qzeros, lz, scales, ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_awq(q, NULL, lw, qzeros, lz, scales, ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw, NULL, lz, scales, ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw, qzeros, lz, NULL, ls), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw - 1, qzeros, lz, scales, ls),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw, qzeros, lz - 1, scales, ls),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_weight_pack_awq(q, qweight, lw, qzeros, lz, scales, ls - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    /* 12 outputs (not a multiple of 8); groups of 48 in 64 columns; INT8 codes; huge scales. */
    quant_weight *rows12 = int4_weight(12, C, G, 1.0f);
    EXPECT_STATUS(quant_weight_awq_sizes(rows12, &lw, &lz, &ls), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_weight_pack_awq(rows12, qweight, lw, qzeros, lz, scales, ls),
                  QUANT_ERR_INVALID_ARGUMENT);
    quant_weight *g48 = int4_weight(R, C, 48, 1.0f);
    EXPECT_STATUS(quant_weight_awq_sizes(g48, &lw, &lz, &ls), QUANT_ERR_INVALID_ARGUMENT);
    float w8[R * C];
    fill_matrix(w8, R * C, 5);
    quant_method m8 = method(QUANT_INT8_SYMMETRIC, 8, 0);
    quant_weight *q8 = NULL;
    EXPECT_STATUS(quant_quantize(&m8, NULL, w8, R, C, NULL, &q8), QUANT_OK);
    EXPECT_STATUS(quant_weight_awq_sizes(q8, &lw, &lz, &ls), QUANT_ERR_INVALID_ARGUMENT);
    quant_weight *huge = int4_weight(R, C, G, 1e7f);
    EXPECT_STATUS(quant_weight_awq_sizes(huge, &lw, &lz, &ls), QUANT_OK);
    EXPECT_STATUS(quant_weight_pack_awq(huge, qweight, lw, qzeros, lz, scales, ls),
                  QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(qweight, sizeof qweight) && UNTOUCHED(qzeros, sizeof qzeros) &&
          UNTOUCHED(scales, sizeof scales));
    quant_weight_free(huge);
    quant_weight_free(q8);
    quant_weight_free(g48);
    quant_weight_free(rows12);
    quant_weight_free(q);
}

/* ------------------------------------------------------------------------------------------- */
/* f16 / bf16 sources */

enum { SR = 4, SC = 40, SN = SR * SC, SG = 16, SNG = SR * 3 };

/* Normal f16 values (exponents 8..16, about 2^-7 .. 2) and the same values as float; bf16 values
 * with 8 significant bits. */
static void fill_sources(uint16_t *h, uint16_t *b, float *hf, float *bf) {
    uint32_t s = 12345u;
    for (int i = 0; i < SN; i++) {
        s = s * 1664525u + 1013904223u;
        uint16_t e = (uint16_t)(8 + (s >> 28) % 9), m = (uint16_t)((s >> 8) & 0x3FF);
        h[i] = (uint16_t)(((s >> 4) & 1u) << 15 | e << 10 | m);
        hf[i] = f16_to_float(h[i]);
        float v = (float)((int)((s >> 12) & 0xFF) - 128) / 64.0f;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        b[i] = (uint16_t)(bits >> 16);
        bf[i] = v;
    }
}

static void test_sources(void) {
    uint16_t h[SN], b[SN];
    float hf[SN], bf[SN];
    fill_sources(h, b, hf, bf);
    const void *srcs[2] = {h, b};
    const float *as_f32[2] = {hf, bf};
    const int32_t dtypes[2] = {QUANT_DTYPE_F16, QUANT_DTYPE_BF16};
    CHECK(QUANT_DTYPE_F32 == 0 && QUANT_DTYPE_F16 == 1 && QUANT_DTYPE_BF16 == 2);
    for (int k = 0; k < 2; k++) {
        int8_t c1[SN], c2[SN];
        float s1[SNG], s2[SNG];
        EXPECT_STATUS(quant_int8_quantize_ex(dtypes[k], srcs[k], SR, SC, SG, c1, SN, s1, SNG), QUANT_OK);
        EXPECT_STATUS(quant_int8_quantize(as_f32[k], SR, SC, SG, c2, SN, s2, SNG), QUANT_OK);
        CHECK(memcmp(c1, c2, sizeof c1) == 0 && memcmp(s1, s2, sizeof s1) == 0);
        EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F32, as_f32[k], SR, SC, SG, c1, SN, s1, SNG),
                      QUANT_OK);
        CHECK(memcmp(c1, c2, sizeof c1) == 0 && memcmp(s1, s2, sizeof s1) == 0);

        uint8_t p1[SN / 2], p2[SN / 2], z1[SNG], z2[SNG];
        EXPECT_STATUS(quant_int4_quantize_ex(dtypes[k], srcs[k], SR, SC, SG, p1, SN / 2, s1, z1, SNG),
                      QUANT_OK);
        EXPECT_STATUS(quant_int4_quantize(as_f32[k], SR, SC, SG, p2, SN / 2, s2, z2, SNG), QUANT_OK);
        CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(s1, s2, sizeof s1) == 0 &&
              memcmp(z1, z2, sizeof z1) == 0);

        uint8_t f1[SN], f2[SN];
        EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(dtypes[k], srcs[k], SR, SC, SG, f1, SN, s1, SNG), QUANT_OK);
        EXPECT_STATUS(quant_fp8_e4m3_quantize(as_f32[k], SR, SC, SG, f2, SN, s2, SNG), QUANT_OK);
        CHECK(memcmp(f1, f2, sizeof f1) == 0 && memcmp(s1, s2, sizeof s1) == 0);
        EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_F32, as_f32[k], SR, SC, SG, f1, SN, s1, SNG),
                      QUANT_OK);
        CHECK(memcmp(f1, f2, sizeof f1) == 0 && memcmp(s1, s2, sizeof s1) == 0);

        uint8_t g1[SR * 2 * 18], g2[SR * 2 * 18];
        float x64[SR * 64];
        uint16_t x16[SR * 64];
        for (int i = 0; i < SR * 64; i++) {
            x64[i] = as_f32[k][i % SN];
            x16[i] = ((const uint16_t *)srcs[k])[i % SN];
        }
        EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, dtypes[k], x16, SR, 64, g1, sizeof g1),
                      QUANT_OK);
        EXPECT_STATUS(quant_ggml_quantize(QUANT_GGML_TYPE_Q4_0, x64, SR, 64, g2, sizeof g2), QUANT_OK);
        CHECK(memcmp(g1, g2, sizeof g1) == 0);
        EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_F32, x64, SR, 64, g1, sizeof g1),
                      QUANT_OK);
        CHECK(memcmp(g1, g2, sizeof g1) == 0);

        quant_method m = method(QUANT_INT4_ASYMMETRIC, 4, SG);
        quant_weight *a = NULL, *bw = NULL;
        EXPECT_STATUS(quant_quantize_ex(&m, NULL, dtypes[k], srcs[k], SR, SC, NULL, &a), QUANT_OK);
        EXPECT_STATUS(quant_quantize(&m, NULL, as_f32[k], SR, SC, NULL, &bw), QUANT_OK);
        size_t la = 0, lb = 0;
        const uint8_t *da = quant_weight_data(a, &la), *db = quant_weight_data(bw, &lb);
        CHECK(la == lb && memcmp(da, db, la) == 0);
        const float *sa = quant_weight_scales(a, &la), *sb = quant_weight_scales(bw, &lb);
        CHECK(la == lb && memcmp(sa, sb, la * sizeof(float)) == 0);
        quant_weight_free(a);
        quant_weight_free(bw);
    }

    /* Argument errors: nothing written. Value errors: the outputs zero-filled. */
    int8_t c[SN];
    uint8_t p[SN], z[SNG];
    float s[SNG];
    FILL(c, sizeof c);
    FILL(p, sizeof p);
    FILL(z, sizeof z);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_int8_quantize_ex(3, h, SR, SC, SG, c, SN, s, SNG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("dtype");
    EXPECT_STATUS(quant_int8_quantize_ex(-1, h, SR, SC, SG, c, SN, s, SNG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, (const uint8_t *)h + 1, SR, SC, SG, c, SN, s, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("aligned");
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, NULL, SR, SC, SG, c, SN, s, SNG),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, h, 0, SC, SG, c, SN, s, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, h, SIZE_MAX / 2, SC, SG, c, SN, s, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, h, SR, SC, SG, NULL, SN, s, SNG),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, h, SR, SC, SG, c, SN - 1, s, SNG),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_BF16, b, SR, SC, SG, c, SN, s, SNG - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    uint16_t bad[SN];
    memcpy(bad, h, sizeof bad);
    bad[77] = 0x7C00; /* +inf */
    CHECK(UNTOUCHED(c, sizeof c) && UNTOUCHED(s, sizeof s));
    EXPECT_STATUS(quant_int8_quantize_ex(QUANT_DTYPE_F16, bad, SR, SC, SG, c, SN, s, SNG),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("77");
    CHECK(ZEROED(c, sizeof c) && ZEROED(s, sizeof s));
    FILL(c, sizeof c);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, bad, SR, SC, SG, p, SN / 2, s, z, SNG),
                  QUANT_ERR_NON_FINITE);
    CHECK(ZEROED(p, SN / 2) && UNTOUCHED(p + SN / 2, SN - SN / 2) && ZEROED(z, sizeof z) && ZEROED(s, sizeof s));
    FILL(p, sizeof p);
    FILL(z, sizeof z);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_int4_quantize_ex(7, h, SR, SC, SG, p, SN / 2, s, z, SNG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, NULL, SR, SC, SG, p, SN / 2, s, z, SNG),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, h, SR, 0, SG, p, SN / 2, s, z, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, h, SR, SC, SG, p, SN / 2 - 1, s, z, SNG),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, h, SR, SC, SG, p, SN / 2, s, z, SNG - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_F16, h, SR, SC, SG, p, SN / 2, s, NULL, SNG),
                  QUANT_ERR_NULL_POINTER);
    uint16_t wide[SN];
    memcpy(wide, b, sizeof wide);
    wide[5] = 0x7F61;  /* about 3e38 */
    wide[6] = 0xFF61;  /* about -3e38: the group's range overflows float */
    EXPECT_STATUS(quant_int4_quantize_ex(QUANT_DTYPE_BF16, wide, SR, SC, SG, p, SN / 2, s, z, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("range");
    CHECK(ZEROED(p, SN / 2) && ZEROED(z, sizeof z) && ZEROED(s, sizeof s));
    FILL(p, sizeof p);
    FILL(z, sizeof z);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_F16, bad, SR, SC, SG, p, SN, s, SNG),
                  QUANT_ERR_NON_FINITE);
    CHECK(ZEROED(p, sizeof p) && ZEROED(s, sizeof s));
    FILL(p, sizeof p);
    FILL(s, sizeof s);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(5, h, SR, SC, SG, p, SN, s, SNG), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_BF16, NULL, SR, SC, SG, p, SN, s, SNG),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_BF16, b, 0, SC, SG, p, SN, s, SNG),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_BF16, b, SR, SC, SG, p, SN - 1, s, SNG),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_fp8_e4m3_quantize_ex(QUANT_DTYPE_BF16, b, SR, SC, SG, p, SN, NULL, SNG),
                  QUANT_ERR_NULL_POINTER);
    /* GGML from 16-bit sources: 4 rows of 40 are not whole blocks; the rest as for floats. */
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_F16, h, 5, 32, p, sizeof p),
                  QUANT_OK);
    FILL(p, sizeof p);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_F16, h, SR, SC, p, sizeof p),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize_ex(99, QUANT_DTYPE_F16, h, 5, 32, p, sizeof p), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, 4, h, 5, 32, p, sizeof p),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_BF16, (const uint8_t *)b + 1, 5, 32, p,
                                         sizeof p),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_BF16, NULL, 5, 32, p, sizeof p),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_BF16, b, 5, 32, NULL, 90),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_BF16, b, 0, 32, p, sizeof p),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_BF16, b, 5, 32, p, 5 * 18 - 1),
                  QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_ggml_quantize_ex(QUANT_GGML_TYPE_Q4_0, QUANT_DTYPE_F16, bad, 5, 32, p, sizeof p),
                  QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("77");
    CHECK(UNTOUCHED(c, sizeof c) && UNTOUCHED(p, sizeof p) && UNTOUCHED(z, sizeof z) &&
          UNTOUCHED(s, sizeof s));

    quant_method m = method(QUANT_INT8_SYMMETRIC, 8, 0);
    quant_weight *sentinel = (quant_weight *)(uintptr_t)0xA5A5A5A5u, *out = sentinel;
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, 9, h, SR, SC, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_F16, NULL, SR, SC, NULL, &out),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_ex(NULL, NULL, QUANT_DTYPE_F16, h, SR, SC, NULL, &out),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_F16, h, SR, SC, NULL, NULL),
                  QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_F16, h, 0, SC, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_F16, (const uint8_t *)h + 1, SR, SC, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_F16, bad, SR, SC, NULL, &out),
                  QUANT_ERR_NON_FINITE);
    quant_method bad_m = method(99, 8, 0);
    EXPECT_STATUS(quant_quantize_ex(&bad_m, NULL, QUANT_DTYPE_F16, h, SR, SC, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT);
    quant_method gptq = method(QUANT_GPTQ, 4, 8);
    EXPECT_STATUS(quant_quantize_ex(&gptq, NULL, QUANT_DTYPE_BF16, b, SR, SC, NULL, &out),
                  QUANT_ERR_INVALID_ARGUMENT); /* GPTQ needs calibration */
    CHECK(out == sentinel);
    EXPECT_STATUS(quant_quantize_ex(&m, NULL, QUANT_DTYPE_BF16, b, SR, SC, NULL, &out), QUANT_OK);
    CHECK(out != sentinel);
    quant_weight_free(out);
}

/* GPTQ and AWQ handles from the calibrated methods: packing them, and the widths no engine reads. */
static void test_calibrated(void) {
    enum { R = 16, C = 64, T = 96 };
    float w[R * C], x[T * C];
    fill_matrix(w, R * C, 21);
    fill_matrix(x, T * C, 22);
    quant_calib *calib = NULL;
    EXPECT_STATUS(quant_calib_new(C, &calib), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(calib, x, T, C), QUANT_OK);
    quant_options *o = NULL;
    EXPECT_STATUS(quant_options_new(&o), QUANT_OK);
    EXPECT_STATUS(quant_options_set_act_order(o, true), QUANT_OK);

    int32_t qweight[C * R], qzeros[C * R], g_idx[C];
    uint16_t scales[C * R];
    size_t lw = 0, lz = 0, ls = 0, lg = 0;
    quant_method g4 = method(QUANT_GPTQ, 4, 32), g5 = method(QUANT_GPTQ, 5, 32);
    quant_weight *q4 = NULL, *q5 = NULL;
    EXPECT_STATUS(quant_quantize(&g4, o, w, R, C, calib, &q4), QUANT_OK);
    EXPECT_STATUS(quant_quantize(&g5, o, w, R, C, calib, &q5), QUANT_OK);
    size_t n_gidx = 0;
    CHECK(quant_weight_group_index(q4, &n_gidx) != NULL && n_gidx == C); /* act-order */
    EXPECT_STATUS(quant_weight_gptq_sizes(q4, &lw, &lz, &ls, &lg), QUANT_OK);
    CHECK(lw == C / 8 * R && lz == 2 * R / 8 && ls == 2 * R && lg == C);
    EXPECT_STATUS(quant_weight_pack_gptq(q4, 2, qweight, lw, qzeros, lz, scales, ls, g_idx, lg), QUANT_OK);
    const int32_t *gi = quant_weight_group_index(q4, NULL);
    CHECK(memcmp(g_idx, gi, C * sizeof(int32_t)) == 0);
    /* No engine reads 5-bit GPTQ, nor act-order AWQ. */
    FILL(qweight, sizeof qweight);
    EXPECT_STATUS(quant_weight_gptq_sizes(q5, &lw, &lz, &ls, &lg), QUANT_ERR_UNSUPPORTED);
    EXPECT_STATUS(quant_weight_pack_gptq(q5, 2, qweight, C * R, qzeros, C * R, scales, C * R, g_idx, C),
                  QUANT_ERR_UNSUPPORTED);
    EXPECT_STATUS(quant_weight_awq_sizes(q4, &lw, &lz, &ls), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(qweight, sizeof qweight));

    quant_method a4 = method(QUANT_AWQ, 4, 32), a3 = method(QUANT_AWQ, 3, 32);
    quant_weight *w4 = NULL, *w3 = NULL;
    EXPECT_STATUS(quant_quantize(&a4, NULL, w, R, C, calib, &w4), QUANT_OK);
    EXPECT_STATUS(quant_quantize(&a3, NULL, w, R, C, calib, &w3), QUANT_OK);
    size_t n_s = 0;
    CHECK(quant_weight_input_scales(w4, &n_s) != NULL && n_s == C);
    EXPECT_STATUS(quant_weight_awq_sizes(w4, &lw, &lz, &ls), QUANT_OK);
    EXPECT_STATUS(quant_weight_pack_awq(w4, qweight, lw, qzeros, lz, scales, ls), QUANT_OK);
    FILL(qweight, sizeof qweight);
    EXPECT_STATUS(quant_weight_awq_sizes(w3, &lw, &lz, &ls), QUANT_ERR_UNSUPPORTED);
    EXPECT_STATUS(quant_weight_pack_awq(w3, qweight, C * R, qzeros, C * R, scales, C * R), QUANT_ERR_UNSUPPORTED);
    CHECK(UNTOUCHED(qweight, sizeof qweight));
    /* AWQ from bf16 through quant_quantize_ex equals AWQ from the same values as float. */
    uint16_t wb[R * C];
    float wf[R * C];
    for (int i = 0; i < R * C; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        wb[i] = (uint16_t)(bits >> 16);
        bits = (uint32_t)wb[i] << 16;
        memcpy(&wf[i], &bits, 4);
    }
    quant_weight *eb = NULL, *ef = NULL;
    EXPECT_STATUS(quant_quantize_ex(&a4, NULL, QUANT_DTYPE_BF16, wb, R, C, calib, &eb), QUANT_OK);
    EXPECT_STATUS(quant_quantize(&a4, NULL, wf, R, C, calib, &ef), QUANT_OK);
    size_t la = 0, lb = 0;
    const uint8_t *da = quant_weight_data(eb, &la), *db = quant_weight_data(ef, &lb);
    CHECK(la == lb && memcmp(da, db, la) == 0);
    const float *sa = quant_weight_input_scales(eb, &la), *sb = quant_weight_input_scales(ef, &lb);
    CHECK(la == lb && memcmp(sa, sb, la * sizeof(float)) == 0);
    quant_weight_free(eb);
    quant_weight_free(ef);
    quant_weight_free(w3);
    quant_weight_free(w4);
    quant_weight_free(q5);
    quant_weight_free(q4);
    quant_options_free(o);
    quant_calib_free(calib);
}

int main(void) {
    test_ggml_sizes();
    test_ggml_fixture();
    test_ggml_golden_k_quants();
    test_ggml_errors();
    test_ggml_k_quant_errors();
    test_ggml_non_linear();
    test_ggml_ternary();
    test_ggml_weighted();
    test_gptq();
    test_awq();
    test_sources();
    test_calibrated();
    END();
}
