/* Methods, memory estimates and the per-layer configuration: every quant_method_*, quant_estimate_memory
 * and quant_config_* export, on success and on each error path. */
#include <stdint.h>

#include "harness.h"

static size_t detail_len(void) { return quant_last_error(NULL, 0); }

/* A successful status-returning call clears this thread's detail. */
static void clear_detail(void) {
    quant_method ok = {QUANT_INT8_SYMMETRIC, 0, 0, 0.0};
    (void)quant_method_validate(&ok);
}

static quant_method method(quant_method_kind kind, uint32_t bits, uint32_t group, double alpha) {
    quant_method m;
    m.kind = kind;
    m.bits = bits;
    m.group_size = group;
    m.alpha = alpha;
    return m;
}

static int same_method(quant_method a, quant_method b) {
    return a.kind == b.kind && a.bits == b.bits && a.group_size == b.group_size && a.alpha == b.alpha;
}

static void test_validate(void) {
    /* Valid: every kind, including the boundaries. */
    const quant_method good[] = {
        method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0),   method(QUANT_INT8_SYMMETRIC, 99, 128, -5.0),
        method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0), method(QUANT_FP8_E4M3, 0, 0, NAN),
        method(QUANT_AWQ, 4, 128, 0.0),             method(QUANT_AWQ, 0, 128, 0.0),
        method(QUANT_AWQ, 3, 64, 0.0),              method(QUANT_AWQ, 1, 1, 0.0),
        method(QUANT_AWQ, 8, 1, 0.0),               method(QUANT_SMOOTHQUANT, 0, 0, 0.5),
        method(QUANT_SMOOTHQUANT, 0, 0, 0.0),       method(QUANT_SMOOTHQUANT, 0, 0, 1.0),
        method(QUANT_SMOOTHQUANT, 0, 0, -0.0),      method(QUANT_GPTQ, 4, 128, 0.0),
        method(QUANT_GPTQ, 1, 1, 0.0),              method(QUANT_GPTQ, 8, 32, 0.0),
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        EXPECT_STATUS(quant_method_validate(&good[i]), QUANT_OK);

    EXPECT_STATUS(quant_method_validate(NULL), QUANT_ERR_NULL_POINTER);

    quant_method m = method(-1, 0, 0, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("unknown quantization method kind -1");
    m = method(6, 0, 0, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("unknown quantization method kind 6");

    m = method(QUANT_AWQ, 4, 0, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("AWQ group_size must be > 0");
    m = method(QUANT_AWQ, 9, 128, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("AWQ bits must be in [1, 8]");
    m = method(QUANT_GPTQ, 4, 0, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("GPTQ group_size must be > 0");
    m = method(QUANT_GPTQ, 0, 128, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("GPTQ bits must be in [1, 8] (got 0)");
    m = method(QUANT_GPTQ, 9, 128, 0.0);
    EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("GPTQ bits must be in [1, 8] (got 9)");

    const double bad_alpha[] = {-0.1, 1.1, NAN, INFINITY, -INFINITY, 1.0000001};
    for (size_t i = 0; i < sizeof bad_alpha / sizeof bad_alpha[0]; i++) {
        m = method(QUANT_SMOOTHQUANT, 0, 0, bad_alpha[i]);
        EXPECT_STATUS(quant_method_validate(&m), QUANT_ERR_INVALID_ARGUMENT);
        EXPECT_DETAIL_CONTAINS("SmoothQuant alpha must be");
    }
}

static void test_bits_and_ratio(void) {
    const quant_method ms[] = {
        method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0), method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0),
        method(QUANT_FP8_E4M3, 0, 0, 0.0),       method(QUANT_AWQ, 4, 128, 0.0),
        method(QUANT_AWQ, 3, 128, 0.0),          method(QUANT_SMOOTHQUANT, 0, 0, 0.5),
        method(QUANT_GPTQ, 4, 128, 0.0),         method(QUANT_GPTQ, 3, 128, 0.0),
        method(QUANT_AWQ, 0, 128, 0.0),
    };
    const uint32_t bits[] = {8, 4, 8, 4, 3, 8, 4, 3, 4};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        CHECK(quant_method_bits_per_weight(&ms[i]) == bits[i]);
        CHECK(quant_method_compression_ratio(&ms[i]) == 16.0 / bits[i]);
    }

    /* NULL, unknown kind, invalid values: 0 with a detail. */
    const quant_method bad[] = {method(7, 4, 128, 0.0), method(QUANT_GPTQ, 0, 128, 0.0),
                                method(QUANT_AWQ, 4, 0, 0.0), method(QUANT_SMOOTHQUANT, 0, 0, NAN)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_detail();
        CHECK(quant_method_bits_per_weight(&bad[i]) == 0);
        CHECK(detail_len() > 0);
        clear_detail();
        CHECK(quant_method_compression_ratio(&bad[i]) == 0.0);
        CHECK(detail_len() > 0);
    }
    clear_detail();
    CHECK(quant_method_bits_per_weight(NULL) == 0);
    EXPECT_DETAIL_CONTAINS("m is NULL");
    clear_detail();
    CHECK(quant_method_compression_ratio(NULL) == 0.0);
    EXPECT_DETAIL_CONTAINS("m is NULL");
}

static void test_effective_bits(void) {
    quant_method m = method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0);
    CHECK(quant_method_effective_bits(&m, 384) == 4.0 + 3.0 * 36.0 / 384.0);
    CHECK(quant_method_effective_bits(&m, 4096) == 4.28125);
    m = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    CHECK(quant_method_effective_bits(&m, 384) == 8.0 + 32.0 / 384.0);
    m = method(QUANT_FP8_E4M3, 0, 0, 0.0);
    CHECK(quant_method_effective_bits(&m, 147456) == 8.0 + 32.0 / 147456.0);
    m = method(QUANT_SMOOTHQUANT, 0, 0, 0.5);
    CHECK(quant_method_effective_bits(&m, 1536) == 8.0 + 32.0 / 1536.0);
    m = method(QUANT_AWQ, 3, 128, 0.0);
    CHECK(quant_method_effective_bits(&m, 1536) == 3.0 + 12.0 * 35.0 / 1536.0);
    m = method(QUANT_GPTQ, 2, 64, 0.0);
    CHECK(quant_method_effective_bits(&m, 100) == 2.0 + 2.0 * 34.0 / 100.0);

    /* Errors: NULL, cols 0, unknown kind, invalid method. */
    clear_detail();
    CHECK(quant_method_effective_bits(NULL, 128) == 0.0);
    CHECK(detail_len() > 0);
    m = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    clear_detail();
    CHECK(quant_method_effective_bits(&m, 0) == 0.0);
    EXPECT_DETAIL_CONTAINS("cols");
    m = method(42, 4, 128, 0.0);
    clear_detail();
    CHECK(quant_method_effective_bits(&m, 128) == 0.0);
    EXPECT_DETAIL_CONTAINS("unknown quantization method kind 42");
    m = method(QUANT_SMOOTHQUANT, 0, 0, 1.1);
    clear_detail();
    CHECK(quant_method_effective_bits(&m, 128) == 0.0);
    EXPECT_DETAIL_CONTAINS("alpha");
}

static void test_name(void) {
    struct {
        quant_method m;
        const char *name;
    } cases[] = {
        {method(QUANT_INT8_SYMMETRIC, 0, 64, 0.0), "INT8-Symmetric"},
        {method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0), "INT4-Asymmetric"},
        {method(QUANT_FP8_E4M3, 0, 0, 0.0), "FP8-E4M3"},
        {method(QUANT_AWQ, 4, 128, 0.0), "AWQ(group=128)"},
        {method(QUANT_AWQ, 0, 128, 0.0), "AWQ(group=128)"},
        {method(QUANT_AWQ, 3, 128, 0.0), "AWQ(3bit, group=128)"},
        {method(QUANT_SMOOTHQUANT, 0, 0, 0.5), "SmoothQuant(\xce\xb1=0.50)"},
        {method(QUANT_SMOOTHQUANT, 0, 0, 0.85), "SmoothQuant(\xce\xb1=0.85)"},
        {method(QUANT_GPTQ, 4, 128, 0.0), "GPTQ(4bit, group=128)"},
        /* Named even when invalid. */
        {method(QUANT_GPTQ, 9, 0, 0.0), "GPTQ(9bit, group=0)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        FILL(buf, sizeof buf);
        size_t len = quant_method_name(&cases[i].m, buf, sizeof buf);
        CHECK(len == strlen(cases[i].name));
        CHECK(strcmp(buf, cases[i].name) == 0);
        /* Size query. */
        CHECK(quant_method_name(&cases[i].m, NULL, 0) == len);
    }

    /* Truncation: NUL-terminated, full length returned, nothing past buf_len written. */
    quant_method g = method(QUANT_GPTQ, 4, 128, 0.0);
    char small[8];
    FILL(small, sizeof small);
    CHECK(quant_method_name(&g, small, 4) == strlen("GPTQ(4bit, group=128)"));
    CHECK(strcmp(small, "GPT") == 0);
    CHECK(UNTOUCHED(small + 4, sizeof small - 4));
    FILL(small, sizeof small);
    CHECK(quant_method_name(&g, small, 1) == 21);
    CHECK(small[0] == '\0' && UNTOUCHED(small + 1, sizeof small - 1));

    /* Errors: 0, detail, buffer untouched. */
    char buf[32];
    FILL(buf, sizeof buf);
    clear_detail();
    CHECK(quant_method_name(NULL, buf, sizeof buf) == 0);
    CHECK(detail_len() > 0 && UNTOUCHED(buf, sizeof buf));
    quant_method unknown = method(-3, 0, 0, 0.0);
    clear_detail();
    CHECK(quant_method_name(&unknown, buf, sizeof buf) == 0);
    CHECK(detail_len() > 0 && UNTOUCHED(buf, sizeof buf));
    clear_detail();
    CHECK(quant_method_name(&g, NULL, 16) == 0);
    EXPECT_DETAIL_CONTAINS("buf is NULL");
}

static void test_estimate_memory(void) {
    quant_method int4 = method(QUANT_INT4_ASYMMETRIC, 0, 128, 0.0);
    size_t fp16 = 0, q = 0;
    EXPECT_STATUS(quant_estimate_memory(1000000, &int4, &fp16, &q), QUANT_OK);
    CHECK(fp16 == 2000000 && q == 500000);
    quant_method gptq3 = method(QUANT_GPTQ, 3, 128, 0.0);
    EXPECT_STATUS(quant_estimate_memory(3, &gptq3, &fp16, &q), QUANT_OK);
    CHECK(fp16 == 6 && q == 2);
    quant_method int8 = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    EXPECT_STATUS(quant_estimate_memory(0, &int8, &fp16, &q), QUANT_OK);
    CHECK(fp16 == 0 && q == 0);
    /* The largest count whose FP16 size fits: n * 4 bits would overflow, the result does not. */
    EXPECT_STATUS(quant_estimate_memory(SIZE_MAX / 2, &int4, &fp16, &q), QUANT_OK);
    CHECK(fp16 == SIZE_MAX - 1 && q == SIZE_MAX / 4 + 1);

    size_t a, b;
    FILL(&a, sizeof a);
    FILL(&b, sizeof b);
    EXPECT_STATUS(quant_estimate_memory(SIZE_MAX, &int4, &a, &b), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("does not fit");
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
    EXPECT_STATUS(quant_estimate_memory(SIZE_MAX / 2 + 1, &int8, &a, &b), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
    EXPECT_STATUS(quant_estimate_memory(10, NULL, &a, &b), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
    EXPECT_STATUS(quant_estimate_memory(10, &int4, NULL, &b), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(&b, sizeof b));
    EXPECT_STATUS(quant_estimate_memory(10, &int4, &a, NULL), QUANT_ERR_NULL_POINTER);
    CHECK(UNTOUCHED(&a, sizeof a));
    quant_method unknown = method(6, 4, 128, 0.0);
    EXPECT_STATUS(quant_estimate_memory(10, &unknown, &a, &b), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
    quant_method bad = method(QUANT_GPTQ, 0, 128, 0.0);
    EXPECT_STATUS(quant_estimate_memory(10, &bad, &a, &b), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(&a, sizeof a) && UNTOUCHED(&b, sizeof b));
}

static void test_config(void) {
    quant_method int8 = method(QUANT_INT8_SYMMETRIC, 0, 0, 0.0);
    quant_method gptq = method(QUANT_GPTQ, 4, 128, 0.0);
    quant_method fp8 = method(QUANT_FP8_E4M3, 0, 0, 0.0);
    quant_method sq = method(QUANT_SMOOTHQUANT, 99, 0, 0.5);
    quant_method unknown = method(9, 0, 0, 0.0);

    /* quant_config_new */
    quant_config *c = NULL;
    EXPECT_STATUS(quant_config_new(&int8, &c), QUANT_OK);
    CHECK(c != NULL);
    quant_config *sentinel = (quant_config *)(uintptr_t)0x1234;
    quant_config *out = sentinel;
    EXPECT_STATUS(quant_config_new(NULL, &out), QUANT_ERR_NULL_POINTER);
    CHECK(out == sentinel);
    EXPECT_STATUS(quant_config_new(&int8, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_new(&unknown, &out), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("unknown quantization method kind 9");
    CHECK(out == sentinel);

    /* quant_config_set_layer */
    EXPECT_STATUS(quant_config_set_layer(c, "lm_head", &fp8), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(c, "layers.0.attn", &gptq), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(c, "layers.0.mlp", &sq), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(c, "\xc3\xa9t\xc3\xa9", &fp8), QUANT_OK); /* "été" */
    EXPECT_STATUS(quant_config_set_layer(NULL, "x", &fp8), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_set_layer(c, NULL, &fp8), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("layer_name");
    EXPECT_STATUS(quant_config_set_layer(c, "x", NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_set_layer(c, "bad\xff\xfename", &fp8), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("UTF-8");
    EXPECT_STATUS(quant_config_set_layer(c, "\xc3", &fp8), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(quant_config_set_layer(c, "lm_head", &unknown), QUANT_ERR_INVALID_ARGUMENT);

    /* quant_config_method_for_layer: overrides, default, and the failed calls changed nothing. */
    quant_method got;
    EXPECT_STATUS(quant_config_method_for_layer(c, "layers.0.attn", &got), QUANT_OK);
    CHECK(same_method(got, gptq));
    EXPECT_STATUS(quant_config_method_for_layer(c, "lm_head", &got), QUANT_OK);
    CHECK(same_method(got, fp8 ) == 0); /* bits is filled in with the nominal width */
    CHECK(got.kind == QUANT_FP8_E4M3 && got.bits == 8 && got.group_size == 0 && got.alpha == 0.0);
    EXPECT_STATUS(quant_config_method_for_layer(c, "layers.0.mlp", &got), QUANT_OK);
    CHECK(got.kind == QUANT_SMOOTHQUANT && got.bits == 8 && got.alpha == 0.5);
    EXPECT_STATUS(quant_config_method_for_layer(c, "\xc3\xa9t\xc3\xa9", &got), QUANT_OK);
    CHECK(got.kind == QUANT_FP8_E4M3);
    EXPECT_STATUS(quant_config_method_for_layer(c, "layers.1.attn", &got), QUANT_OK);
    CHECK(got.kind == QUANT_INT8_SYMMETRIC && got.bits == 8 && got.group_size == 0);
    EXPECT_STATUS(quant_config_method_for_layer(c, "x", &got), QUANT_OK);
    CHECK(got.kind == QUANT_INT8_SYMMETRIC); /* the NULL-method call did not add "x" */

    quant_method untouched;
    FILL(&untouched, sizeof untouched);
    EXPECT_STATUS(quant_config_method_for_layer(NULL, "x", &untouched), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_method_for_layer(c, NULL, &untouched), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_method_for_layer(c, "x", NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_config_method_for_layer(c, "\x80", &untouched), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(UNTOUCHED(&untouched, sizeof untouched));

    /* quant_config_validate */
    EXPECT_STATUS(quant_config_validate(c), QUANT_OK);
    EXPECT_STATUS(quant_config_validate(NULL), QUANT_ERR_NULL_POINTER);
    quant_method bad_awq = method(QUANT_AWQ, 4, 0, 0.0);
    quant_method bad_sq = method(QUANT_SMOOTHQUANT, 0, 0, -0.1);
    EXPECT_STATUS(quant_config_set_layer(c, "zeta", &bad_awq), QUANT_OK);
    EXPECT_STATUS(quant_config_validate(c), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("layer 'zeta': AWQ group_size must be > 0");
    EXPECT_STATUS(quant_config_set_layer(c, "beta", &bad_sq), QUANT_OK);
    EXPECT_STATUS(quant_config_validate(c), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("layer 'beta': SmoothQuant alpha"); /* sorted: beta before zeta */
    /* Fixing the layers makes it valid again. */
    EXPECT_STATUS(quant_config_set_layer(c, "zeta", &gptq), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(c, "beta", &sq), QUANT_OK);
    EXPECT_STATUS(quant_config_validate(c), QUANT_OK);
    quant_config_free(c);

    /* An invalid default is stored and reported by validate. */
    quant_method nan_sq = method(QUANT_SMOOTHQUANT, 0, 0, NAN);
    quant_config *d = NULL;
    EXPECT_STATUS(quant_config_new(&nan_sq, &d), QUANT_OK);
    EXPECT_STATUS(quant_config_set_layer(d, "a", &bad_awq), QUANT_OK);
    EXPECT_STATUS(quant_config_validate(d), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_DETAIL_CONTAINS("default method: SmoothQuant alpha");
    quant_config_free(d);

    quant_config_free(NULL);
}

int main(void) {
    /* The kinds are the documented numbers. */
    CHECK(QUANT_INT8_SYMMETRIC == 0 && QUANT_INT4_ASYMMETRIC == 1 && QUANT_FP8_E4M3 == 2);
    CHECK(QUANT_AWQ == 3 && QUANT_SMOOTHQUANT == 4 && QUANT_GPTQ == 5);
    test_validate();
    test_bits_and_ratio();
    test_effective_bits();
    test_name();
    test_estimate_memory();
    test_config();
    END();
}
