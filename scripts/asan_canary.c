/* Deliberately breaks the API contract (dst holds 5 codes, dst_len says 6) so that the library's own
 * quantization loop stores past a heap buffer: scripts/harden.sh expects AddressSanitizer to report it
 * with a Rust frame on top, which proves that the library's code (not only the C side) is
 * instrumented. Not a test of the library. The portable (scalar) kernels are forced: the AVX2/AVX-512
 * paths store with masked vector instructions, which AddressSanitizer does not check. */
#include <stdlib.h>

#include "quant.h"

int main(void) {
    float src[6] = {1, 2, 3, 4, 5, 6};
    float scales[2];
    int8_t *dst = (int8_t *)malloc(5);
    if (quant_set_simd_level(QUANT_SIMD_SCALAR) != QUANT_OK) return 2;
    quant_status s = quant_int8_quantize(src, 2, 3, 0, dst, 6, scales, 2);
    free(dst);
    return s == QUANT_OK ? 0 : 1;
}
