/* Quantizes a small matrix to INT8 (one scale per row) and back, and reports the largest error.
 * Build: cc quantize.c $(pkg-config --cflags --libs quant)   or link quant::quant with CMake. */
#include <math.h>
#include <stdio.h>

#include <quant.h>

#define ROWS 4
#define COLS 8

static int fail(const char *what, quant_status s) {
    char detail[256];
    quant_last_error(detail, sizeof detail);
    fprintf(stderr, "%s: %s (%s)\n", what, quant_status_string(s), detail);
    return 1;
}

int main(void) {
    float w[ROWS * COLS], back[ROWS * COLS], scales[ROWS];
    int8_t codes[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) w[i] = sinf((float)i) * (float)(1 + i / COLS);

    quant_status s = quant_int8_quantize(w, ROWS, COLS, 0, codes, ROWS * COLS, scales, ROWS);
    if (s != QUANT_OK) return fail("quant_int8_quantize", s);
    s = quant_int8_dequantize(codes, scales, ROWS, COLS, 0, back, ROWS * COLS);
    if (s != QUANT_OK) return fail("quant_int8_dequantize", s);

    float max_err = 0.0f;
    for (int i = 0; i < ROWS * COLS; i++) max_err = fmaxf(max_err, fabsf(w[i] - back[i]));
    printf("quant %s: INT8 %dx%d, max error %.5f (half a step of row 0: %.5f)\n", quant_version_string(),
           ROWS, COLS, max_err, scales[0] / 2);

    /* Errors come back as a status plus a per-thread detail; nothing is written on error. */
    s = quant_int8_quantize(w, ROWS, COLS, 0, codes, ROWS * COLS - 1, scales, ROWS);
    if (s != QUANT_ERR_BUFFER_TOO_SMALL) return fail("expected BUFFER_TOO_SMALL", s);
    return max_err <= scales[ROWS - 1] / 2 ? 0 : 1;
}
