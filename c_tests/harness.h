/* A tiny test harness shared by the c_tests/test_<area>.c programs.
 *
 * CHECK(cond) counts a failure and goes on; EXPECT_STATUS(call, status) checks a call's status and,
 * for errors, that quant_last_error() gives a non-empty detail; read_fixture(name, &len) reads a file
 * of tests/data; END() prints "<file>: N passed, N failed" and returns the process exit code. */
#ifndef QUANT_TEST_HARNESS_H
#define QUANT_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static int harness_passed = 0;
static int harness_failed = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            harness_passed++;                                                        \
        } else {                                                                     \
            harness_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Checks the status of `call`; for an expected error also that a detail was recorded. */
#define EXPECT_STATUS(call, expected)                                                           \
    do {                                                                                        \
        quant_status got_ = (call);                                                             \
        char detail_[512];                                                                      \
        size_t detail_len_ = quant_last_error(detail_, sizeof detail_);                         \
        if (got_ == (expected) && ((expected) == QUANT_OK || detail_len_ > 0)) {                \
            harness_passed++;                                                                   \
        } else {                                                                                \
            harness_failed++;                                                                   \
            fprintf(stderr, "%s:%d: %s gave %d (%s), expected %d; detail: '%s'\n", __FILE__,   \
                    __LINE__, #call, (int)got_, quant_status_string(got_), (int)(expected),     \
                    detail_len_ ? detail_ : "");                                                \
        }                                                                                       \
    } while (0)

/* The detail of the last error on this thread contains `needle`. */
#define EXPECT_DETAIL_CONTAINS(needle)                                                   \
    do {                                                                                 \
        char d_[512];                                                                    \
        quant_last_error(d_, sizeof d_);                                                 \
        if (strstr(d_, (needle)) != NULL) {                                              \
            harness_passed++;                                                            \
        } else {                                                                         \
            harness_failed++;                                                            \
            fprintf(stderr, "%s:%d: detail '%s' lacks '%s'\n", __FILE__, __LINE__, d_, (needle)); \
        }                                                                                \
    } while (0)

/* Reads the whole fixture file tests/data/<name> (QUANT_TEST_DATA_DIR, set by CMakeLists.txt) into a
 * malloc'ed buffer that the caller frees; *len receives its byte count. NULL, with a message, when the
 * file cannot be read. */
static inline void *read_fixture(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", QUANT_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Every byte of buf[0..len) still equals the sentinel byte `b`: nothing was written. */
static inline int harness_untouched(const void *buf, size_t len, unsigned char b) {
    const unsigned char *p = (const unsigned char *)buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != b) return 0;
    return 1;
}
#define SENTINEL 0xA5
#define FILL(buf, len) memset((buf), SENTINEL, (len))
#define UNTOUCHED(buf, len) harness_untouched((buf), (len), SENTINEL)
/* Every byte of buf[0..len) is 0: a quantizer zero-filled its output on a value error. */
#define ZEROED(buf, len) harness_untouched((buf), (len), 0)

#define END()                                                                          \
    do {                                                                               \
        printf("%s: %d passed, %d failed\n", __FILE__, harness_passed, harness_failed); \
        return harness_failed ? 1 : 0;                                                 \
    } while (0)

#endif
