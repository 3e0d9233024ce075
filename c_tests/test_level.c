/* Quantization levels: quant_level_bits, _reduction_factor, _from_bits, _name. */
#include "harness.h"

static size_t detail_len(void) { return quant_last_error(NULL, 0); }

/* A successful status-returning call clears this thread's detail. */
static void clear_detail(void) {
    quant_level tmp;
    (void)quant_level_from_bits(8, &tmp);
}

int main(void) {
    /* Every level: bits, reduction factor versus FP32, name. */
    const quant_level levels[5] = {QUANT_LEVEL_FP32, QUANT_LEVEL_FP16, QUANT_LEVEL_BF16,
                                   QUANT_LEVEL_INT8, QUANT_LEVEL_INT4};
    const uint32_t bits[5] = {32, 16, 16, 8, 4};
    const double factor[5] = {1.0, 2.0, 2.0, 4.0, 8.0};
    const char *names[5] = {"FP32", "FP16", "BF16", "INT8", "INT4"};
    for (int i = 0; i < 5; i++) {
        CHECK(levels[i] == i);
        CHECK(quant_level_bits(levels[i]) == bits[i]);
        CHECK(quant_level_reduction_factor(levels[i]) == factor[i]);
        const char *name = quant_level_name(levels[i]);
        CHECK(name != NULL && strcmp(name, names[i]) == 0);
        /* Static strings: the same pointer every time. */
        CHECK(quant_level_name(levels[i]) == name);
    }

    /* Unknown levels: 0 / 0.0 / NULL, with a detail naming the value. */
    const quant_level unknown[4] = {-1, 5, 100, (quant_level)0x7fffffff};
    for (int i = 0; i < 4; i++) {
        clear_detail();
        CHECK(detail_len() == 0);
        CHECK(quant_level_bits(unknown[i]) == 0);
        CHECK(detail_len() > 0);
        clear_detail();
        CHECK(quant_level_reduction_factor(unknown[i]) == 0.0);
        CHECK(detail_len() > 0);
        clear_detail();
        CHECK(quant_level_name(unknown[i]) == NULL);
        CHECK(detail_len() > 0);
    }
    CHECK(quant_level_bits(7) == 0);
    EXPECT_DETAIL_CONTAINS("unknown quantization level 7");

    /* From a bit width: 32, 16 (FP16, not BF16), 8, 4. */
    const uint32_t widths[4] = {32, 16, 8, 4};
    const quant_level expected[4] = {QUANT_LEVEL_FP32, QUANT_LEVEL_FP16, QUANT_LEVEL_INT8,
                                     QUANT_LEVEL_INT4};
    for (int i = 0; i < 4; i++) {
        quant_level out = -7;
        EXPECT_STATUS(quant_level_from_bits(widths[i], &out), QUANT_OK);
        CHECK(out == expected[i]);
    }

    /* Errors leave *out untouched. */
    const uint32_t bad_widths[7] = {0, 1, 2, 3, 12, 64, 0xffffffffu};
    for (int i = 0; i < 7; i++) {
        quant_level out;
        FILL(&out, sizeof out);
        EXPECT_STATUS(quant_level_from_bits(bad_widths[i], &out), QUANT_ERR_INVALID_ARGUMENT);
        CHECK(UNTOUCHED(&out, sizeof out));
    }
    EXPECT_STATUS(quant_level_from_bits(12, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_STATUS(quant_level_from_bits(8, NULL), QUANT_ERR_NULL_POINTER);
    EXPECT_DETAIL_CONTAINS("out");
    END();
}
