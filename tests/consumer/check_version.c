/* The installed header and the installed library agree: QUANT_VERSION_* equals quant_version(). */
#include <stdio.h>
#include <string.h>

#include <quant.h>

int main(void) {
    unsigned v = quant_version();
    unsigned header = ((unsigned)QUANT_VERSION_MAJOR << 16) | ((unsigned)QUANT_VERSION_MINOR << 8) |
                      (unsigned)QUANT_VERSION_PATCH;
    int ok = v == header && v == (unsigned)QUANT_VERSION_NUMBER &&
             strcmp(quant_version_string(), QUANT_VERSION_STRING) == 0 &&
             quant_status_string(QUANT_ERR_INVALID_ARGUMENT) != NULL;
    printf("header %s (0x%06x), library %s (0x%06x): %s\n", QUANT_VERSION_STRING, header,
           quant_version_string(), v, ok ? "match" : "MISMATCH");
    return ok ? 0 : 1;
}
