/* GPTQ, AWQ and SmoothQuant through quant_quantize / quant_quantize_group on real MiniLM layers, and the
 * W8A8 helpers (quant_smooth_scales, quant_quantize_activations, quant_int8_gemm): success and every
 * error path, with untouched outputs. */
#include <stdint.h>

#include "harness.h"

#define HANDLE_SENTINEL ((quant_weight *)(uintptr_t)0xA5A5A5A5u)

/* Calibrate on the first 1024 tokens, measure on 96 held-out ones; AWQ searches on 128 sampled tokens:
 * small enough to run under valgrind (the Rust tests measure the full held-out half). */
enum { D = 384, TOKENS = 2048, CALIB = 1024, EVAL = 96 };

static quant_method method(quant_method_kind kind, uint32_t bits, uint32_t group, double alpha) {
    quant_method m;
    m.kind = kind;
    m.bits = bits;
    m.group_size = group;
    m.alpha = alpha;
    return m;
}

static float *load(const char *name, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/minilm/%s.f32", QUANT_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    float *v = malloc(n * sizeof *v);
    if (!v || fread(v, sizeof *v, n, f) != n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    return v;
}

/* ||X W^T - X Q^T||^2 / ||X W^T||^2 over `n` tokens of x (n x D), W and Q of D x D. */
static double rel_error(const float *x, size_t n, const float *w, const float *q) {
    double num = 0, den = 0;
    for (size_t t = 0; t < n; t++) {
        for (size_t r = 0; r < D; r++) {
            double y = 0, yq = 0;
            for (size_t j = 0; j < D; j++) {
                y += (double)x[t * D + j] * w[r * D + j];
                yq += (double)x[t * D + j] * q[r * D + j];
            }
            num += (y - yq) * (y - yq);
            den += y * y;
        }
    }
    return num / den;
}

static double quantized_error(quant_weight *q, const float *x, const float *w) {
    float *deq = malloc(D * D * sizeof *deq);
    EXPECT_STATUS(quant_weight_dequantize(q, deq, D * D), QUANT_OK);
    double e = rel_error(x, EVAL, w, deq);
    free(deq);
    return e;
}

static void test_real_layers(void) {
    float *wq = load("encoder.layer.5.attention.self.query.weight", D * D);
    float *wv = load("encoder.layer.5.attention.self.value.weight", D * D);
    float *x = load("x_calib.layer5.attn_in", (size_t)TOKENS * D);
    const float *held_out = x + (size_t)CALIB * D;

    quant_calib *calib = NULL;
    EXPECT_STATUS(quant_calib_new(D, &calib), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(calib, x, CALIB / 2, D), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(calib, x + (size_t)CALIB / 2 * D, CALIB / 2, D), QUANT_OK);
    CHECK(quant_calib_tokens(calib) == CALIB);

    quant_method rtn4 = method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0);
    quant_weight *r = NULL;
    EXPECT_STATUS(quant_quantize(&rtn4, NULL, wq, D, D, NULL, &r), QUANT_OK);
    double e_rtn = quantized_error(r, held_out, wq);
    quant_weight_free(r);

    /* GPTQ 4-bit g128 with act-order: beats RTN, carries g_idx, same result on 1 and 2 threads. */
    quant_options *o = NULL;
    EXPECT_STATUS(quant_options_new(&o), QUANT_OK);
    EXPECT_STATUS(quant_options_set_act_order(o, true), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 1), QUANT_OK);
    quant_method gptq = method(QUANT_GPTQ, 4, 128, 0.0);
    quant_weight *g1 = NULL, *g2 = NULL;
    EXPECT_STATUS(quant_quantize(&gptq, o, wq, D, D, calib, &g1), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 2), QUANT_OK);
    /* One rule for every thread count: 0 = all cores, at most QUANT_MAX_THREADS, as quant_set_threads. */
    EXPECT_STATUS(quant_options_set_threads(o, QUANT_MAX_THREADS + 1), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("at most 1024");
    EXPECT_STATUS(quant_set_threads(QUANT_MAX_THREADS + 1), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("at most 1024");
    CHECK(quant_threads() == 1); /* the default, unchanged by the refused call */
    EXPECT_STATUS(quant_options_set_threads(o, QUANT_MAX_THREADS), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 0), QUANT_OK);
    EXPECT_STATUS(quant_options_set_threads(o, 2), QUANT_OK);
    EXPECT_STATUS(quant_quantize(&gptq, o, wq, D, D, calib, &g2), QUANT_OK);
    size_t len1 = 0, len2 = 0;
    const uint8_t *d1 = quant_weight_data(g1, &len1);
    const uint8_t *d2 = quant_weight_data(g2, &len2);
    CHECK(len1 == D * D / 2 && len1 == len2 && memcmp(d1, d2, len1) == 0);
    size_t glen = 0;
    const int32_t *gidx = quant_weight_group_index(g1, &glen);
    CHECK(gidx != NULL && glen == D);
    size_t zlen = 0;
    CHECK(quant_weight_zero_points(g1, &zlen) != NULL && zlen == D * 3);
    double e_gptq = quantized_error(g1, held_out, wq);
    printf("L5 query: RTN INT4 g128 %.4e, GPTQ 4b act-order %.4e\n", e_rtn, e_gptq);
    CHECK(e_gptq < e_rtn);
    quant_weight_free(g1);
    quant_weight_free(g2);

    /* AWQ on query and value together: one s, both beat RTN. */
    quant_method awq = method(QUANT_AWQ, 4, 128, 0.0);
    const float *ws[2] = {wq, wv};
    const size_t rows[2] = {D, D};
    quant_weight *qs[2] = {NULL, NULL};
    EXPECT_STATUS(quant_options_set_sample_tokens(o, 128), QUANT_OK);
    EXPECT_STATUS(quant_quantize_group(&awq, o, ws, rows, 2, D, calib, qs), QUANT_OK);
    size_t s0len = 0, s1len = 0;
    const float *s0 = quant_weight_input_scales(qs[0], &s0len);
    const float *s1 = quant_weight_input_scales(qs[1], &s1len);
    CHECK(s0 != NULL && s1 != NULL && s0len == D && s1len == D && memcmp(s0, s1, D * sizeof *s0) == 0);
    double e_awq_q = quantized_error(qs[0], held_out, wq);
    double e_awq_v = quantized_error(qs[1], held_out, wv);
    printf("L5 query+value AWQ: %.4e, %.4e\n", e_awq_q, e_awq_v);
    CHECK(e_awq_q < e_rtn);
    EXPECT_STATUS(quant_quantize(&rtn4, NULL, wv, D, D, NULL, &r), QUANT_OK);
    CHECK(e_awq_v < quantized_error(r, held_out, wv));
    quant_weight_free(r);
    quant_weight_free(qs[0]);
    quant_weight_free(qs[1]);

    /* SmoothQuant group: one s, INT8 codes, per-row scales; the W8A8 layer through the helpers. */
    quant_method sq = method(QUANT_SMOOTHQUANT, 0, 0, 0.5);
    EXPECT_STATUS(quant_quantize_group(&sq, NULL, ws, rows, 2, D, calib, qs), QUANT_OK);
    s0 = quant_weight_input_scales(qs[0], &s0len);
    s1 = quant_weight_input_scales(qs[1], &s1len);
    CHECK(s0 != NULL && s0len == D && memcmp(s0, s1, D * sizeof *s0) == 0);
    size_t dlen = 0, slen = 0;
    const int8_t *codes = (const int8_t *)quant_weight_data(qs[0], &dlen);
    const float *wscales = quant_weight_scales(qs[0], &slen);
    CHECK(dlen == D * D && slen == D);
    int8_t *xq = malloc((size_t)EVAL * D);
    float xs[EVAL];
    EXPECT_STATUS(quant_quantize_activations(held_out, EVAL, D, s0, xq, (size_t)EVAL * D, xs, EVAL), QUANT_OK);
    float *y = malloc((size_t)EVAL * D * sizeof *y);
    EXPECT_STATUS(quant_int8_gemm(xq, xs, codes, wscales, EVAL, D, D, y, (size_t)EVAL * D), QUANT_OK);
    double num = 0, den = 0;
    for (size_t t = 0; t < EVAL; t++) {
        for (size_t o2 = 0; o2 < D; o2++) {
            double ref = 0;
            for (size_t j = 0; j < D; j++) ref += (double)held_out[t * D + j] * wq[o2 * D + j];
            num += (ref - y[t * D + o2]) * (ref - y[t * D + o2]);
            den += ref * ref;
        }
    }
    printf("L5 query SmoothQuant W8A8 per-token: %.4e\n", num / den);
    CHECK(num / den < 1e-3);
    free(xq);
    free(y);
    quant_weight_free(qs[0]);
    quant_weight_free(qs[1]);

    quant_options_free(o);
    quant_calib_free(calib);
    free(wq);
    free(wv);
    free(x);
}

static void test_quantize_errors(void) {
    enum { R = 8, C = 16 };
    float w[R * C], x[32 * C];
    for (int i = 0; i < R * C; i++) w[i] = sinf((float)i * 0.37f);
    for (int i = 0; i < 32 * C; i++) x[i] = cosf((float)i * 0.11f);
    const quant_method kinds[3] = {method(QUANT_GPTQ, 4, 8, 0.0), method(QUANT_AWQ, 4, 8, 0.0),
                                   method(QUANT_SMOOTHQUANT, 0, 0, 0.5)};
    quant_calib *empty = NULL, *calib = NULL, *other = NULL, *no_h = NULL;
    EXPECT_STATUS(quant_calib_new(C, &empty), QUANT_OK);
    EXPECT_STATUS(quant_calib_new(C, &calib), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(calib, x, 32, C), QUANT_OK);
    EXPECT_STATUS(quant_calib_new(C + 1, &other), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(other, x, 2, C + 1), QUANT_OK);
    EXPECT_STATUS(quant_calib_new_ex(C, 0, NULL, &no_h), QUANT_OK);
    EXPECT_STATUS(quant_calib_add(no_h, x, 32, C), QUANT_OK);
    float nan_w[R * C];
    memcpy(nan_w, w, sizeof w);
    nan_w[5] = NAN;
    quant_options *bad = NULL;
    EXPECT_STATUS(quant_options_new(&bad), QUANT_OK);

    for (int k = 0; k < 3; k++) {
        const quant_method *m = &kinds[k];
        quant_weight *out = HANDLE_SENTINEL;
        EXPECT_STATUS(quant_quantize(m, NULL, w, R, C, NULL, &out), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_quantize(m, NULL, w, R, C, empty, &out), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("no tokens");
        EXPECT_STATUS(quant_quantize(m, NULL, w, R, C, other, &out), QUANT_ERR_SHAPE_MISMATCH);
        EXPECT_STATUS(quant_quantize(m, NULL, nan_w, R, C, calib, &out), QUANT_ERR_NON_FINITE);
        EXPECT_DETAIL_CONTAINS("[5]");
        EXPECT_STATUS(quant_quantize(m, NULL, NULL, R, C, calib, &out), QUANT_ERR_NULL_POINTER);
        EXPECT_STATUS(quant_quantize(m, NULL, w, 0, C, calib, &out), QUANT_ERR_INVALID_ARGUMENT);
        CHECK(out == HANDLE_SENTINEL);

        const float *ws[2] = {w, NULL};
        const size_t rows[2] = {R, R};
        quant_weight *outs[2] = {HANDLE_SENTINEL, HANDLE_SENTINEL};
        EXPECT_STATUS(quant_quantize_group(m, NULL, ws, rows, 0, C, calib, outs), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_STATUS(quant_quantize_group(m, NULL, ws, rows, 2, C, calib, outs), QUANT_ERR_NULL_POINTER);
        CHECK(outs[0] == HANDLE_SENTINEL && outs[1] == HANDLE_SENTINEL);

        quant_weight *ok = NULL;
        EXPECT_STATUS(quant_quantize(m, NULL, w, R, C, calib, &ok), QUANT_OK);
        quant_weight_free(ok);
    }
    /* GPTQ needs the Hessian; AWQ and SmoothQuant do not. */
    quant_weight *out = HANDLE_SENTINEL;
    EXPECT_STATUS(quant_quantize(&kinds[0], NULL, w, R, C, no_h, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("Hessian");
    CHECK(out == HANDLE_SENTINEL);
    for (int k = 1; k < 3; k++) {
        EXPECT_STATUS(quant_quantize(&kinds[k], NULL, w, R, C, no_h, &out), QUANT_OK);
        quant_weight_free(out);
        out = HANDLE_SENTINEL;
    }

    /* A Hessian that no damping can factorize: H = I with H[0][1] = H[1][0] = 50 is indefinite (an
     * eigenvalue of 1 - 50), and adding up to mean(diag H) = 1 to the diagonal does not fix it. A
     * Hessian accumulated from finite activations is positive semi-definite, so it is imported. */
    double h[C * C];
    memset(h, 0, sizeof h);
    for (int i = 0; i < C; i++) h[i * C + i] = 1.0;
    h[1] = 50.0;
    h[C] = 50.0;
    EXPECT_STATUS(quant_calib_set_hessian(calib, h, C * C, C, 32), QUANT_OK);
    EXPECT_STATUS(quant_quantize(&kinds[0], NULL, w, R, C, calib, &out), QUANT_ERR_NUMERICAL);
    EXPECT_DETAIL_CONTAINS("damp 0.01");
    EXPECT_DETAIL_CONTAINS("damp 1");
    CHECK(out == HANDLE_SENTINEL);

    /* NaN in the activations never reaches the statistics. */
    float nan_x[2 * C];
    memcpy(nan_x, x, sizeof nan_x);
    nan_x[C] = NAN;
    EXPECT_STATUS(quant_calib_add(calib, nan_x, 2, C), QUANT_ERR_NON_FINITE);

    quant_options_free(bad);
    quant_calib_free(empty);
    quant_calib_free(calib);
    quant_calib_free(other);
    quant_calib_free(no_h);
}

static void test_smooth_scales(void) {
    const float w[5] = {0.0f, 0.0f, 2.0f, 4.0f, 1.0f};
    const float a[5] = {0.0f, 3.0f, 8.0f, 0.0f, 1.0f};
    float out[5];
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, 0.5, out), QUANT_OK);
    CHECK(out[0] == 1.0f && out[1] == 1.0f && out[2] == 2.0f && out[3] == 0.0f && out[4] == 1.0f);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, 1.0, out), QUANT_OK);
    CHECK(out[1] == 3.0f && out[2] == 8.0f);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, 0.0, out), QUANT_OK);
    CHECK(out[2] == 0.5f && out[1] == 1.0f);
    EXPECT_STATUS(quant_smooth_scales(NULL, NULL, 0, 0.5, NULL), QUANT_OK);

    FILL(out, sizeof out);
    EXPECT_STATUS(quant_smooth_scales(NULL, a, 5, 0.5, out), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_smooth_scales(w, NULL, 5, 0.5, out), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, 0.5, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, -0.1, out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, 1.5, out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_smooth_scales(w, a, 5, NAN, out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("alpha");
    float bad[5];
    memcpy(bad, a, sizeof bad);
    bad[3] = NAN;
    EXPECT_STATUS(quant_smooth_scales(w, bad, 5, 0.5, out), QUANT_ERR_NON_FINITE);
    bad[3] = -1.0f;
    EXPECT_STATUS(quant_smooth_scales(w, bad, 5, 0.5, out), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(out, sizeof out));
}

static void test_activations(void) {
    enum { N = 3, C = 5 };
    const float x[N * C] = {1, -2, 3, -4, 5.08f, 0, 0, 0, 0, 0, 0.5f, 0.25f, -0.125f, 1, 2};
    const float s[C] = {1, 2, 0.5f, 4, 1};
    int8_t q[N * C];
    float ts[N];
    EXPECT_STATUS(quant_quantize_activations(x, N, C, NULL, q, N * C, ts, N), QUANT_OK);
    CHECK(ts[0] == 5.08f / 127.0f && q[4] == 127 && q[0] == 25);
    CHECK(ts[1] == 0.0f && q[5] == 0 && q[9] == 0);
    EXPECT_STATUS(quant_quantize_activations(x, N, C, s, q, N * C, ts, N), QUANT_OK);
    /* Token 0 divided by s: 1, -1, 6, -1, 5.08 -> max 6. */
    CHECK(ts[0] == 6.0f / 127.0f && q[2] == 127);

    int8_t q2[N * C];
    float ts2[N];
    FILL(q2, sizeof q2);
    FILL(ts2, sizeof ts2);
    EXPECT_STATUS(quant_quantize_activations(NULL, N, C, NULL, q2, N * C, ts2, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_activations(x, N, C, NULL, NULL, N * C, ts2, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_activations(x, N, C, NULL, q2, N * C, NULL, N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_quantize_activations(x, 0, C, NULL, q2, N * C, ts2, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_activations(x, N, 0, NULL, q2, N * C, ts2, N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_activations(x, SIZE_MAX, 2, NULL, q2, N * C, ts2, N),
                  QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_quantize_activations(x, N, C, NULL, q2, N * C - 1, ts2, N), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(quant_quantize_activations(x, N, C, NULL, q2, N * C, ts2, N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    float xn[N * C];
    memcpy(xn, x, sizeof xn);
    xn[7] = INFINITY;
    EXPECT_STATUS(quant_quantize_activations(xn, N, C, NULL, q2, N * C, ts2, N), QUANT_ERR_NON_FINITE);
    EXPECT_DETAIL_CONTAINS("x[7]");
    float sn[C] = {1, 1, NAN, 1, 1};
    EXPECT_STATUS(quant_quantize_activations(x, N, C, sn, q2, N * C, ts2, N), QUANT_ERR_NON_FINITE);
    sn[2] = 0.0f;
    EXPECT_STATUS(quant_quantize_activations(x, N, C, sn, q2, N * C, ts2, N), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(q2, sizeof q2));
    CHECK(UNTOUCHED(ts2, sizeof ts2));
}

static void test_gemm(void) {
    enum { M = 5, N = 7, K = 37 };
    int8_t a[M * K], b[N * K];
    float sa[M], sb[N], out[M * N];
    for (int i = 0; i < M * K; i++) a[i] = (int8_t)((i * 37) % 255 - 127);
    for (int i = 0; i < N * K; i++) b[i] = (int8_t)((i * 91 + 3) % 256 - 128);
    for (int i = 0; i < M; i++) sa[i] = 0.01f + 0.003f * (float)i;
    for (int i = 0; i < N; i++) sb[i] = 0.02f + 0.001f * (float)i;
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, M, N, K, out, M * N), QUANT_OK);
    int exact = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            int32_t acc = 0;
            for (int l = 0; l < K; l++) acc += (int32_t)a[i * K + l] * (int32_t)b[j * K + l];
            float want = (float)acc * sa[i];
            want = want * sb[j];
            exact &= out[i * N + j] == want;
        }
    }
    CHECK(exact);

    float o2[M * N];
    FILL(o2, sizeof o2);
    EXPECT_STATUS(quant_int8_gemm(NULL, sa, b, sb, M, N, K, o2, M * N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_gemm(a, NULL, b, sb, M, N, K, o2, M * N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_gemm(a, sa, NULL, sb, M, N, K, o2, M * N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, NULL, M, N, K, o2, M * N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, M, N, K, NULL, M * N), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, 0, N, K, o2, M * N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, M, 0, K, o2, M * N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, M, N, 0, o2, M * N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, SIZE_MAX, N, K, o2, M * N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, 1, 1, 131072, o2, M * N), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("131071");
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sb, M, N, K, o2, M * N - 1), QUANT_ERR_BUFFER_TOO_SMALL);
    float sbad[N];
    memcpy(sbad, sb, sizeof sbad);
    sbad[2] = NAN;
    EXPECT_STATUS(quant_int8_gemm(a, sa, b, sbad, M, N, K, o2, M * N), QUANT_ERR_NON_FINITE);
    CHECK(UNTOUCHED(o2, sizeof o2));
}

int main(void) {
    test_smooth_scales();
    test_activations();
    test_gemm();
    test_quantize_errors();
    test_real_layers();
    END();
}
