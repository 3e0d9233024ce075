/* Golden GGML blocks written by ggml itself, for tests/ggml.rs (run through scripts/ggml-golden.sh,
 * which compiles this file against the ggml of the llama.cpp build that scripts/llama-cpp.sh caches).
 *
 *   ggml_golden <minilm folder> <output folder> <llama-cpp-python version>
 *
 * For each input (float32, row-major) it writes, for every block type the quant library has:
 *   <input>.<type>.bin      ggml_quantize_chunk(type, ..., imatrix = NULL): what llama-quantize writes
 *                           without an importance matrix (quantize_row_*_ref for every type here)
 *   <input>.<type>.deq.f32  ggml's own dequantizer (type traits' to_float) of those bytes
 * and, with an importance matrix (one weight per column, <input>.imatrix.f32):
 *   <input>.<type>.imatrix.bin      ggml_quantize_chunk(type, ..., imatrix): what llama-quantize
 *                                   --imatrix writes (quantize_row_*_impl; Q8_0, MXFP4, NVFP4,
 *                                   TQ1_0 and TQ2_0 ignore it)
 *   <input>.<type>.imatrix.deq.f32  ggml's dequantizer of those bytes
 *   random.<type>.ones.bin          random with an importance matrix of all ones
 * and, for the types gguf-py's fixtures (tests/data/ggml/records.*) do not cover, IQ4_NL, MXFP4,
 * IQ4_XS, NVFP4, TQ1_0 and TQ2_0:
 *   records.<type>.bin      64 records of random bytes with a finite header (f16 scale not inf/NaN;
 *                           E8M0 exponent at most 252, the largest ggml writes; any NVFP4 bytes, as
 *                           every UE4M3 scale byte is finite; the ternary types' f16 scale is their
 *                           last two bytes)
 *   records.<type>.deq.f32  ggml's dequantizer of them
 * and manifest.json (input shapes, types, ggml's version and commit).
 *
 * Inputs:
 *   random  3 x 512: normal values at scales 1, 1e-3 and 40 (a fixed splitmix64 + Box-Muller stream)
 *   real    2 x 1536: rows 0 and 1 of MiniLM's encoder.layer.0.output.dense weight
 *   edge    1 x 2048: eight hand-made 256-value super-blocks (see edge_rows)
 * Importance matrices:
 *   random  512 weights 10^(-3u), u uniform in (0, 1], every 37th weight 0
 *   real    the mean squared activation of each of the 1536 columns over MiniLM's 2048 calibration
 *           tokens (x_calib.layer0.ffn_act, the input of that layer), as llama-imatrix computes it
 *   edge    2048 weights: per super-block all zero but one, all equal, spread over six decades, ...
 *           (see edge_weights)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

static const enum ggml_type TYPES[] = {
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
    GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_IQ4_NL, GGML_TYPE_MXFP4, GGML_TYPE_IQ4_XS, GGML_TYPE_NVFP4,
    GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static uint64_t rng_state = 0x5EEDC0DE20261206ull;

static uint64_t splitmix64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double uniform(void) { return ((double)(splitmix64() >> 11) + 1.0) / 9007199254740992.0; }

static float normal(void) {
    double r = sqrt(-2.0 * log(uniform()));
    return (float)(r * cos(6.283185307179586 * uniform()));
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "ggml_golden: %s %s\n", what, path);
    exit(1);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) die("cannot write", path);
}

static void read_f32(const char *path, float *out, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f || fread(out, sizeof(float), n, f) != n) die("cannot read", path);
    fclose(f);
}

/* Eight super-blocks of 256 values, each an edge of some type's algorithm. */
static void edge_rows(float *x) {
    float *b;
    /* 0: all zero (every scale 0; Q4_0/Q5_0 keep max = +0.0 so d = -0.0). */
    memset(x, 0, 256 * sizeof(float));
    /* 1: normal data with zero sub-blocks: values 0..16 (a K-quant 16-value sub-block) and 32..64 (a
     * 32-value block or sub-block), a negative zero among them. */
    b = x + 256;
    for (int i = 0; i < 256; ++i) b[i] = normal();
    for (int i = 0; i < 16; ++i) b[i] = 0.0f;
    for (int i = 32; i < 64; ++i) b[i] = 0.0f;
    b[40] = -0.0f;
    /* 2: huge values (headers far from f16 overflow: Q4_0's d is about 1e4). */
    b = x + 512;
    for (int i = 0; i < 256; ++i) b[i] = 2e4f * normal();
    /* 3: tiny values: f16-subnormal scales. */
    b = x + 768;
    for (int i = 0; i < 256; ++i) b[i] = 1e-6f * normal();
    /* 4: tinier values: the f16 scales round to zero. */
    b = x + 1024;
    for (int i = 0; i < 256; ++i) b[i] = 1e-9f * normal();
    /* 5: small values with one outlier of each sign. */
    b = x + 1280;
    for (int i = 0; i < 256; ++i) b[i] = 0.01f * normal();
    b[77] = 5.0f;
    b[200] = -7.0f;
    /* 6: a positive constant (the min is clamped to 0), then all negative values. */
    b = x + 1536;
    for (int i = 0; i < 128; ++i) b[i] = 0.37f;
    for (int i = 128; i < 256; ++i) b[i] = -fabsf(normal());
    /* 7: multiples of one half: exact ties in the scaled values. */
    b = x + 1792;
    for (int i = 0; i < 256; ++i) b[i] = roundf(4.0f * normal()) / 2.0f;
}

/* Importance weights of the edge input, one kind per super-block. */
static void edge_weights(float *w) {
    for (int b = 0; b < 8; ++b) {
        float *v = w + 256 * b;
        for (int i = 0; i < 256; ++i) {
            switch (b) {
            case 0: v[i] = 1.0f; break;                                        /* all equal */
            case 1: v[i] = i % 16 == 3 ? 2.0f : 0.0f; break;                   /* mostly zero */
            case 2: v[i] = (float)pow(10.0, -6.0 * uniform()); break;          /* six decades */
            case 3: v[i] = 1e-30f * (float)uniform(); break;                   /* tiny */
            case 4: v[i] = 1e20f * (float)uniform(); break;                    /* huge */
            case 5: v[i] = i == 77 || i == 200 ? 100.0f : (float)uniform(); break; /* outliers weighed */
            case 6: v[i] = i < 128 ? 0.0f : 1.0f; break;                        /* zero half */
            default: v[i] = (float)(i % 7); break;                             /* integers, zeros */
            }
        }
    }
}

/* The imatrix of a layer as llama-imatrix accumulates it: the mean of x^2 per column over the tokens. */
static void mean_squares(const float *x, int64_t tokens, int64_t cols, float *out) {
    for (int64_t c = 0; c < cols; ++c) {
        double s = 0.0;
        for (int64_t t = 0; t < tokens; ++t) s += (double)x[t * cols + c] * (double)x[t * cols + c];
        out[c] = (float)(s / (double)tokens);
    }
}

static void lower(char *s) {
    for (char *c = s; *c; ++c)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
}

/* Writes <input>.<type>.<suffix>.bin (ggml_quantize_chunk with the importance matrix w) and, when
 * deq_too, <input>.<type>.<suffix>.deq.f32. */
static void write_quantized(const char *out, const char *input, int64_t rows, int64_t cols,
                            const float *x, const float *w, enum ggml_type type, const char *suffix,
                            int deq_too) {
    const int64_t n = rows * cols;
    const size_t size = (size_t)rows * ggml_row_size(type, cols);
    void *q = malloc(size);
    float *deq = malloc((size_t)n * sizeof(float));
    if (!q || !deq) die("out of memory for", input);
    const size_t written = ggml_quantize_chunk(type, x, q, 0, rows, cols, w);
    if (written != size) die("ggml_quantize_chunk wrote an unexpected size for", input);
    char tname[32], name[256];
    snprintf(tname, sizeof tname, "%s", ggml_type_name(type));
    lower(tname);
    snprintf(name, sizeof name, "%s.%s%s.bin", input, tname, suffix);
    write_file(out, name, q, size);
    if (deq_too) {
        ggml_get_type_traits(type)->to_float(q, deq, n);
        snprintf(name, sizeof name, "%s.%s%s.deq.f32", input, tname, suffix);
        write_file(out, name, deq, (size_t)n * sizeof(float));
    }
    free(q);
    free(deq);
}

/* Writes records.<type>.bin and .deq.f32: 64 random records of `type` with finite headers. */
static void write_records(const char *out, enum ggml_type type) {
    const size_t ts = ggml_type_size(type), bs = (size_t)ggml_blck_size(type), n = 64;
    uint8_t *q = malloc(n * ts);
    float *deq = malloc(n * bs * sizeof(float));
    if (!q || !deq) die("out of memory for", "records");
    for (size_t i = 0; i < n * ts; ++i) q[i] = (uint8_t)splitmix64();
    for (size_t r = 0; r < n; ++r) {
        uint8_t *h = q + r * ts;
        if (type == GGML_TYPE_MXFP4) {
            h[0] = (uint8_t)(h[0] % 253);
        } else if (type == GGML_TYPE_NVFP4) {
            /* no f16 header */
        } else {
            /* The f16 scale leads every other record but the ternary ones, which end with it. */
            uint8_t *d = h + (type == GGML_TYPE_TQ1_0 || type == GGML_TYPE_TQ2_0 ? ts - 2 : 0);
            if ((d[1] & 0x7C) == 0x7C) d[1] ^= 0x40; /* all exponent bits set: made finite */
        }
    }
    ggml_get_type_traits(type)->to_float(q, deq, (int64_t)(n * bs));
    char tname[32], name[256];
    snprintf(tname, sizeof tname, "%s", ggml_type_name(type));
    lower(tname);
    snprintf(name, sizeof name, "records.%s.bin", tname);
    write_file(out, name, q, n * ts);
    snprintf(name, sizeof name, "records.%s.deq.f32", tname);
    write_file(out, name, deq, n * bs * sizeof(float));
    free(q);
    free(deq);
}

struct input {
    const char *name;
    int64_t rows, cols;
    float *x;
};

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: ggml_golden <minilm folder> <output folder> <llama-cpp-python version>\n");
        return 2;
    }
    const char *minilm = argv[1], *out = argv[2], *version = argv[3];

    struct input inputs[3] = {{"random", 3, 512, NULL}, {"real", 2, 1536, NULL}, {"edge", 1, 2048, NULL}};
    for (int k = 0; k < 3; ++k) {
        inputs[k].x = malloc((size_t)(inputs[k].rows * inputs[k].cols) * sizeof(float));
        if (!inputs[k].x) die("out of memory for", inputs[k].name);
    }
    const float row_scale[3] = {1.0f, 1e-3f, 40.0f};
    for (int r = 0; r < 3; ++r)
        for (int i = 0; i < 512; ++i) inputs[0].x[r * 512 + i] = row_scale[r] * normal();
    char path[4096];
    snprintf(path, sizeof path, "%s/encoder.layer.0.output.dense.weight.f32", minilm);
    read_f32(path, inputs[1].x, 2 * 1536);
    edge_rows(inputs[2].x);

    /* The importance matrices (drawn after the inputs, so that those keep their values). */
    float *imatrix[3];
    for (int k = 0; k < 3; ++k) {
        imatrix[k] = malloc((size_t)inputs[k].cols * sizeof(float));
        if (!imatrix[k]) die("out of memory for", inputs[k].name);
    }
    for (int i = 0; i < 512; ++i) imatrix[0][i] = i % 37 == 5 ? 0.0f : (float)pow(10.0, -3.0 * uniform());
    {
        const int64_t tokens = 2048;
        float *act = malloc((size_t)(tokens * 1536) * sizeof(float));
        if (!act) die("out of memory for", "activations");
        snprintf(path, sizeof path, "%s/x_calib.layer0.ffn_act.f32", minilm);
        read_f32(path, act, (size_t)(tokens * 1536));
        mean_squares(act, tokens, 1536, imatrix[1]);
        free(act);
    }
    edge_weights(imatrix[2]);
    float ones[512];
    for (int i = 0; i < 512; ++i) ones[i] = 1.0f;

    char name[256];
    for (int k = 0; k < 3; ++k) {
        const struct input *in = &inputs[k];
        const int64_t n = in->rows * in->cols;
        snprintf(name, sizeof name, "%s.f32", in->name);
        write_file(out, name, in->x, (size_t)n * sizeof(float));
        snprintf(name, sizeof name, "%s.imatrix.f32", in->name);
        write_file(out, name, imatrix[k], (size_t)in->cols * sizeof(float));
        for (size_t t = 0; t < NTYPES; ++t) {
            write_quantized(out, in->name, in->rows, in->cols, in->x, NULL, TYPES[t], "", 1);
            write_quantized(out, in->name, in->rows, in->cols, in->x, imatrix[k], TYPES[t], ".imatrix", 1);
            if (k == 0) write_quantized(out, in->name, in->rows, in->cols, in->x, ones, TYPES[t], ".ones", 0);
        }
    }

    /* Drawn last, so that the inputs and importance matrices above keep their values. */
    write_records(out, GGML_TYPE_IQ4_NL);
    write_records(out, GGML_TYPE_MXFP4);
    write_records(out, GGML_TYPE_IQ4_XS);
    write_records(out, GGML_TYPE_NVFP4);
    write_records(out, GGML_TYPE_TQ1_0);
    write_records(out, GGML_TYPE_TQ2_0);

    char manifest[4096];
    int len = snprintf(manifest, sizeof manifest,
                       "{\n \"generator\": \"scripts/ggml-golden.sh (scripts/ggml_golden.c)\",\n"
                       " \"llama_cpp_python_version\": \"%s\",\n \"ggml_version\": \"%s\",\n"
                       " \"ggml_commit\": \"%s\",\n \"quantizer\": \"ggml_quantize_chunk, imatrix NULL\",\n"
                       " \"weighted\": \"ggml_quantize_chunk, imatrix <input>.imatrix.f32 (<input>.<type>.imatrix.bin) "
                       "or all ones (random.<type>.ones.bin)\",\n"
                       " \"inputs\": {",
                       version, ggml_version(), ggml_commit());
    for (int k = 0; k < 3; ++k)
        len += snprintf(manifest + len, sizeof manifest - (size_t)len, "%s\n  \"%s\": [%lld, %lld]",
                        k ? "," : "", inputs[k].name, (long long)inputs[k].rows, (long long)inputs[k].cols);
    len += snprintf(manifest + len, sizeof manifest - (size_t)len, "\n },\n \"types\": [");
    for (size_t t = 0; t < NTYPES; ++t)
        len += snprintf(manifest + len, sizeof manifest - (size_t)len, "%s\"%s\"", t ? ", " : "",
                        ggml_type_name(TYPES[t]));
    len += snprintf(manifest + len, sizeof manifest - (size_t)len, "]\n}\n");
    write_file(out, "manifest.json", manifest, (size_t)len);
    for (int k = 0; k < 3; ++k) {
        free(inputs[k].x);
        free(imatrix[k]);
    }
    return 0;
}
