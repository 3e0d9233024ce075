/* Status codes, the per-thread error detail, and the version. */
#include "harness.h"

int main(void) {
    /* Every known code has its own text; unknown codes get a text too, never NULL. */
    for (int s = QUANT_OK; s <= QUANT_ERR_INTERNAL; s++) {
        CHECK(quant_status_string(s) != NULL);
        CHECK(strcmp(quant_status_string(s), quant_status_string(-1)) != 0);
    }
    CHECK(strcmp(quant_status_string(12345), "unknown status code") == 0);
    CHECK(strcmp(quant_status_string(QUANT_OK), "success") == 0);

    /* The version agrees with the header the program was compiled with. */
    CHECK(quant_version() == QUANT_VERSION_NUMBER);
    CHECK(strcmp(quant_version_string(), QUANT_VERSION_STRING) == 0);

    /* The last-error detail: size query, truncation, NUL termination. */
    float out[2] = {0};
    EXPECT_STATUS(quant_f16_to_f32(NULL, out, 2), QUANT_ERR_NULL_POINTER);
    size_t full = quant_last_error(NULL, 0);
    CHECK(full > 0);
    char small[4];
    memset(small, 'x', sizeof small);
    CHECK(quant_last_error(small, sizeof small) == full);
    CHECK(small[3] == '\0' && strlen(small) == 3);
    /* A NULL buffer is a size query whatever its length, and never replaces the detail. */
    CHECK(quant_last_error(NULL, 64) == full);
    CHECK(quant_last_error(NULL, 0) == full);
    char big[256];
    CHECK(quant_last_error(big, sizeof big) == full && strlen(big) == full);
    /* A successful status-returning call clears the detail. */
    uint16_t h[2] = {0x3c00, 0};
    EXPECT_STATUS(quant_f16_to_f32(h, out, 2), QUANT_OK);
    CHECK(quant_last_error(big, sizeof big) == 0);
    END();
}
