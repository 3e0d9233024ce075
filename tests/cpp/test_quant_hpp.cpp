// Tests of the C++17 layer include/quant.hpp against the installed library: every wrapper on its
// success path and its error paths (the exception carries the status and a detail), RAII ownership,
// and a real MiniLM layer (tests/data/minilm) through quant::weight.
//
// Built by scripts/test-bindings.sh with -std=c++17 -Wall -Wextra -Wpedantic -Werror.
#include <algorithm>
#include <quant.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#ifndef QUANT_TEST_DATA_DIR
#error "define QUANT_TEST_DATA_DIR (the repository's tests/data)"
#endif

static int passed = 0, failed = 0;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

// expr must throw quant::error with status `want` and a non-empty detail.
#define EXPECT_ERROR(expr, want)                                                                    \
    do {                                                                                              \
        try {                                                                                         \
            (void)(expr);                                                                             \
            failed++;                                                                                 \
            std::fprintf(stderr, "%s:%d: no exception from %s\n", __FILE__, __LINE__, #expr);         \
        } catch (const quant::error &e_) {                                                            \
            if (e_.status() == (want) && !e_.detail().empty()) {                                    \
                passed++;                                                                             \
            } else {                                                                                  \
                failed++;                                                                             \
                std::fprintf(stderr, "%s:%d: %s threw %s, expected status %d\n", __FILE__, __LINE__, \
                             #expr, e_.what(), (int)(want));                                        \
            }                                                                                         \
        }                                                                                             \
    } while (0)

[[maybe_unused]] static std::vector<float> load(const std::string &name, std::size_t n) {
    std::string path = std::string(QUANT_TEST_DATA_DIR) + "/minilm/" + name + ".f32";
    std::ifstream in(path, std::ios::binary);
    std::vector<float> v(n);
    in.read(reinterpret_cast<char *>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
    if (!in) {
        std::fprintf(stderr, "cannot read %zu floats from %s\n", n, path.c_str());
        std::exit(2);
    }
    return v;
}

// ||X W^T - X Q^T||^2 / ||X W^T||^2 for X: n x cols, W and Q: rows x cols.
[[maybe_unused]] static double output_error(const std::vector<float> &x, std::size_t n, const std::vector<float> &w,
                                            const std::vector<float> &q, std::size_t rows, std::size_t cols) {
    double num = 0, den = 0;
    for (std::size_t t = 0; t < n; t++) {
        const float *xt = &x[t * cols];
        for (std::size_t r = 0; r < rows; r++) {
            double y = 0, yq = 0;
            const float *wr = &w[r * cols], *qr = &q[r * cols];
            for (std::size_t j = 0; j < cols; j++) {
                y += (double)xt[j] * wr[j];
                yq += (double)xt[j] * qr[j];
            }
            num += (y - yq) * (y - yq);
            den += y * y;
        }
    }
    return num / den;
}

static void test_status_version() {
    CHECK(quant::version() == (std::uint32_t)QUANT_VERSION_NUMBER);
    CHECK(quant::version_matches());
    CHECK(std::string(quant::version_string()) == QUANT_VERSION_STRING);
    CHECK(std::string(quant::status_string(QUANT_OK)) == "success");
    CHECK(quant::status_string(12345) != nullptr);
    quant::error e(QUANT_ERR_INVALID_ARGUMENT, "f", "bad thing");
    CHECK(e.status() == QUANT_ERR_INVALID_ARGUMENT && e.detail() == "bad thing" && e.function() == "f");
    CHECK(std::string(e.what()).find("bad thing") != std::string::npos);
    // span from the usual containers
    std::vector<float> v{1, 2, 3};
    std::array<float, 2> a{{4, 5}};
    float c[4] = {0, 0, 0, 0};
    quant::span<const float> sv(v), sa(a);
    quant::span<float> sc(c);
    CHECK(sv.size() == 3 && sv[2] == 3 && sa.size() == 2 && sc.size() == 4 && !sc.empty());
}

static void test_levels() {
    CHECK(quant::level_bits(QUANT_LEVEL_INT4) == 4 && quant::level_bits(99) == 0);
    CHECK(quant::level_reduction_factor(QUANT_LEVEL_INT8) == 4.0);
    CHECK(quant::level_from_bits(16) == QUANT_LEVEL_FP16);
    CHECK(quant::level_name(QUANT_LEVEL_BF16) == "BF16" && quant::level_name(-1).empty());
    EXPECT_ERROR(quant::level_from_bits(7), QUANT_ERR_INVALID_ARGUMENT);
}

static void test_methods_config() {
    quant::method g = quant::method::gptq(4, 128);
    g.validate();
    CHECK(g.name() == "GPTQ(4bit, group=128)");
    CHECK(g.bits_per_weight() == 4 && g.compression_ratio() == 4.0);
    CHECK(g.effective_bits(4096) > 4.0);
    CHECK(quant::method::int8().bits_per_weight() == 8);
    EXPECT_ERROR(quant::method::gptq(9, 128).validate(), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::method::smoothquant(1.5).validate(), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::method(quant_method_kind(42), 8, 0, 0).validate(), QUANT_ERR_INVALID_ARGUMENT);
    quant::memory_estimate m = quant::estimate_memory(1000, quant::method::int8());
    CHECK(m.fp16_bytes == 2000 && m.quant_bytes > 0 && m.quant_bytes < m.fp16_bytes);
    EXPECT_ERROR(quant::estimate_memory(1000, quant::method::gptq(1, 0)), QUANT_ERR_INVALID_ARGUMENT);

    quant::config cfg(quant::method::int8());
    cfg.set_layer("lm_head", quant::method::fp8());
    CHECK(cfg.method_for_layer("lm_head").kind == QUANT_FP8_E4M3);
    CHECK(cfg.method_for_layer("other").kind == QUANT_INT8_SYMMETRIC);
    cfg.validate();
    quant::config moved(std::move(cfg)); // the owner moves, the handle stays valid
    CHECK(cfg.get() == nullptr && moved.get() != nullptr);
    moved.set_layer("bad.layer", quant::method::gptq(4, 0));
    try {
        moved.validate();
        CHECK(false);
    } catch (const quant::error &e) {
        CHECK(e.status() == QUANT_ERR_INVALID_ARGUMENT);
        CHECK(e.detail().find("bad.layer") != std::string::npos);
    }
    // quant_config_new rejects an unknown kind; values are checked by validate().
    EXPECT_ERROR(quant::config(quant::method(quant_method_kind(42), 8, 0, 0)), QUANT_ERR_INVALID_ARGUMENT);
}

static void test_casts() {
    std::vector<float> x{1.0f, -2.0f, 0.5f, 65504.0f};
    std::vector<std::uint16_t> h = quant::f32_to_f16(x);
    CHECK(h.size() == 4 && h[0] == 0x3c00 && h[1] == 0xc000 && h[3] == 0x7bff);
    CHECK(quant::f16_to_f32(h) == x);
    std::vector<std::uint16_t> b = quant::f32_to_bf16(x);
    CHECK(b[0] == 0x3f80 && quant::bf16_to_f32(b)[2] == 0.5f);
    std::vector<float> big{1000.0f, std::nanf(""), 448.0f};
    CHECK(quant::f32_to_fp8_e4m3(big, true)[0] == 0x7e);  // saturates to 448
    CHECK((quant::f32_to_fp8_e4m3(big, false)[0] & 0x7f) == 0x7f); // overflow is NaN without saturation
    CHECK(std::isnan(quant::fp8_e4m3_to_f32(quant::f32_to_fp8_e4m3(big))[1]));
    CHECK(quant::fp8_e4m3_to_f32(quant::f32_to_fp8_e4m3(big))[2] == 448.0f);
    CHECK(quant::fp8_e5m2_to_f32(quant::f32_to_fp8_e5m2(x))[1] == -2.0f);
    std::vector<std::uint16_t> small(3, 0xAAAA);
    EXPECT_ERROR(quant::f32_to_f16(x, small), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(small[0] == 0xAAAA);
    EXPECT_ERROR(quant::f16_to_f32(quant::span<const std::uint16_t>(nullptr, 2), quant::span<float>(nullptr, 2)),
                 QUANT_ERR_NULL_POINTER);
    std::vector<std::uint8_t> f8(2);
    EXPECT_ERROR(quant::f32_to_fp8_e5m2(x, f8), QUANT_ERR_BUFFER_TOO_SMALL);
}

static void test_kernels() {
    const std::size_t rows = 3, cols = 10, group = 4;
    std::vector<float> w(rows * cols);
    for (std::size_t i = 0; i < w.size(); i++) w[i] = std::sin((float)i) * (1.0f + (float)(i / cols));
    CHECK(quant::scale_count(rows, cols, group) == 9 && quant::scale_count(rows, cols, 0) == 3);
    CHECK(quant::int4_packed_size(rows, cols) == 15);

    quant::int8_matrix q8 = quant::int8_quantize(w, rows, cols, group);
    std::vector<float> back = quant::int8_dequantize(q8, rows, cols, group);
    bool within = back.size() == w.size();
    for (std::size_t i = 0; within && i < w.size(); i++) {
        float step = q8.scales[(i / cols) * 3 + (i % cols) / group];
        within = std::fabs(back[i] - w[i]) <= step * 0.5f * 1.0001f;
    }
    CHECK(within);

    std::vector<std::int8_t> codes(rows * cols - 1, 0x55);
    std::vector<float> scales(9, -1.0f);
    EXPECT_ERROR(quant::int8_quantize(w, rows, cols, group, codes, scales), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(codes[0] == 0x55 && scales[0] == -1.0f);
    EXPECT_ERROR(quant::int8_quantize(quant::span<const float>(w.data(), 5), rows, cols, group), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::int8_quantize(w, 0, cols, group), QUANT_ERR_INVALID_ARGUMENT);
    const std::size_t huge = std::numeric_limits<std::size_t>::max();
    EXPECT_ERROR(quant::int8_quantize(w, huge, 2, group), QUANT_ERR_INVALID_ARGUMENT); // rows * cols overflows
    EXPECT_ERROR(quant::int4_quantize(w, huge, 2, group), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = w;
    bad[7] = std::nanf("");
    EXPECT_ERROR(quant::int8_quantize(bad, rows, cols, group), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(quant::int8_dequantize(q8.codes, quant::span<const float>(q8.scales.data(), 2), rows, cols, group,
                                        back),
                 QUANT_ERR_BUFFER_TOO_SMALL);

    quant::int4_matrix q4 = quant::int4_quantize(w, rows, cols, group);
    CHECK(q4.codes.size() == 15 && q4.zeros.size() == 9);
    std::vector<float> back4 = quant::int4_dequantize(q4, rows, cols, group);
    within = true;
    for (std::size_t i = 0; i < w.size(); i++) {
        within = within && std::fabs(back4[i] - w[i]) <= q4.scales[(i / cols) * 3 + (i % cols) / group] * 1.0001f;
    }
    CHECK(within);
    std::vector<float> s4(9);
    std::vector<std::uint8_t> z4(8), c4(15);
    EXPECT_ERROR(quant::int4_quantize(w, rows, cols, group, c4, s4, z4), QUANT_ERR_SHAPE_MISMATCH);
    EXPECT_ERROR(quant::int4_quantize(bad, rows, cols, group), QUANT_ERR_NON_FINITE);

    // Into caller buffers: the same outputs; on a NaN an exception and zero-filled outputs, on an
    // argument error an exception and nothing written.
    std::vector<std::int8_t> c8s(rows * cols);
    std::vector<float> s8s(9);
    quant::int8_quantize(w, rows, cols, group, c8s, s8s);
    CHECK(c8s == q8.codes && s8s == q8.scales);
    std::vector<std::uint8_t> c4s(15), z4s(9);
    std::vector<float> s4s(9);
    quant::int4_quantize(w, rows, cols, group, c4s, s4s, z4s);
    CHECK(c4s == q4.codes && s4s == q4.scales && z4s == q4.zeros);
    EXPECT_ERROR(quant::int8_quantize(bad, rows, cols, group, c8s, s8s), QUANT_ERR_NON_FINITE);
    CHECK(std::all_of(c8s.begin(), c8s.end(), [](std::int8_t v) { return v == 0; }));
    CHECK(std::all_of(s8s.begin(), s8s.end(), [](float v) { return v == 0.0f; }));
    EXPECT_ERROR(quant::int4_quantize(bad, rows, cols, group, c4s, s4s, z4s), QUANT_ERR_NON_FINITE);
    CHECK(std::all_of(c4s.begin(), c4s.end(), [](std::uint8_t v) { return v == 0; }));
    CHECK(std::all_of(z4s.begin(), z4s.end(), [](std::uint8_t v) { return v == 0; }));
    quant::int8_quantize(w, rows, cols, group, c8s, s8s);
    EXPECT_ERROR(quant::int8_quantize(bad, rows, cols, group, c8s, quant::span<float>(s8s.data(), 8)),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(c8s == q8.codes && s8s == q8.scales);
    quant::fp8_matrix f8 = quant::fp8_e4m3_quantize(w, rows, cols, group);
    std::vector<std::uint8_t> f8s(rows * cols);
    quant::fp8_e4m3_quantize(w, rows, cols, group, f8s, s8s);
    CHECK(f8s == f8.codes && s8s == f8.scales);

    std::vector<std::int8_t> vals{-8, 7, 3, -1, 5};
    std::vector<std::uint8_t> packed = quant::pack_int4(vals);
    CHECK(packed.size() == 3 && packed[0] == 0x78);
    CHECK(quant::unpack_int4(packed, 5) == vals);
    std::vector<std::uint8_t> one(1);
    EXPECT_ERROR(quant::pack_int4(vals, one), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::unpack_int4(one, 5), QUANT_ERR_BUFFER_TOO_SMALL);

}

static void test_fp8_scaled() {
    const std::size_t rows = 3, cols = 10;
    std::vector<float> w(rows * cols);
    for (std::size_t i = 0; i < w.size(); i++) w[i] = std::sin((float)i) * (1.0f + (float)(i / cols));
    std::vector<float> bad = w;
    bad[7] = std::nanf("");
    std::vector<float> s4(9);
    std::vector<std::uint8_t> c4(15);
    quant::fp8_matrix q8f = quant::fp8_e4m3_quantize(w, rows, cols, 0);
    std::vector<float> backf = quant::fp8_e4m3_dequantize(q8f, rows, cols, 0);
    double err = 0;
    for (std::size_t i = 0; i < w.size(); i++) err = std::fmax(err, std::fabs(backf[i] - w[i]) / (std::fabs(w[i]) + 1e-3));
    CHECK(err < 0.07);
    EXPECT_ERROR(quant::fp8_e4m3_quantize(w, rows, cols, 0, c4, s4), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::fp8_e4m3_quantize(w, std::numeric_limits<std::size_t>::max(), 3, 0), QUANT_ERR_INVALID_ARGUMENT);

}

static void test_smooth_scales() {
    std::vector<float> wa{1.0f, 4.0f}, aa{4.0f, 1.0f};
    std::vector<float> s = quant::smooth_scales(wa, aa, 0.5);
    CHECK(std::fabs(s[0] - 2.0f) < 1e-6f && std::fabs(s[1] - 0.5f) < 1e-6f);
    EXPECT_ERROR(quant::smooth_scales(wa, aa, 1.5), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::smooth_scales(wa, std::vector<float>{1.0f}, 0.5), QUANT_ERR_SHAPE_MISMATCH);
}

static void test_weight_rtn() {
    // A real layer: MiniLM layer 0 query (384 x 384) and its input activations (2048 x 384).
    const std::size_t rows = 384, cols = 384, n = 2048;
    std::vector<float> w = load("encoder.layer.0.attention.self.query.weight", rows * cols);
    std::vector<float> x = load("x_calib.layer0.attn_in", n * cols);

    quant::weight q = quant::weight::quantize(quant::method::int8(), w, rows, cols);
    CHECK(q && q.rows() == rows && q.cols() == cols);
    CHECK(q.method().kind == QUANT_INT8_SYMMETRIC);
    CHECK(q.data().size() == rows * cols && q.scales().size() == rows);
    CHECK(q.zero_points().empty() && q.input_scales().empty() && q.group_index().empty());
    std::vector<float> deq = q.dequantize();
    double e8 = output_error(x, 512, w, deq, rows, cols);
    std::printf("  INT8 per channel, layer 0 query, 512 tokens: relative output error %.4e\n", e8);
    CHECK(e8 > 0 && e8 < 1.0e-4);

    quant::weight q4 = quant::weight::quantize(quant::method::int4(128), w, rows, cols);
    CHECK(q4.data().size() == rows * cols / 2 && q4.scales().size() == rows * 3 && q4.zero_points().size() == rows * 3);
    double e4 = output_error(x, 512, w, q4.dequantize(), rows, cols);
    std::printf("  INT4 g128, layer 0 query: %.4e\n", e4);
    CHECK(e4 > e8 && e4 < 2.0e-2);

    std::vector<float> small(rows * cols - 1, 7.0f);
    EXPECT_ERROR(q.dequantize(small), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(small[0] == 7.0f);
    EXPECT_ERROR(quant::weight::quantize(quant::method::int8(), w, 0, cols), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::weight::quantize(quant::method::int8(), quant::span<const float>(w.data(), 10), rows, cols),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols), QUANT_ERR_INVALID_ARGUMENT);
    quant::weight moved(std::move(q));
    CHECK(!q && moved && moved.rows() == rows);
    quant_weight *raw = moved.release();
    CHECK(raw != nullptr && !moved);
    quant::weight again(raw); // frees it
}

static void test_calibrated() {
    const std::size_t rows = 384, cols = 384, n = 2048, half = 1024;
    std::vector<float> w = load("encoder.layer.5.attention.self.query.weight", rows * cols);
    std::vector<float> wv = load("encoder.layer.5.attention.self.value.weight", rows * cols);
    std::vector<float> x = load("x_calib.layer5.attn_in", n * cols);
    std::vector<float> test_x(x.begin() + half * cols, x.end());

    quant::calib c(cols);
    c.add(quant::span<const float>(x.data(), 512 * cols)).add(quant::span<const float>(x.data() + 512 * cols, 512 * cols), 512, cols);
    CHECK(c.tokens() == half && c.cols() == cols);
    CHECK(quant::calib::recommended_tokens(QUANT_GPTQ, cols) == 16 * cols);
    CHECK(quant::calib::recommended_tokens(QUANT_AWQ, cols) == 512);
    CHECK(quant::calib::recommended_tokens(QUANT_INT8_SYMMETRIC, cols) == 0);
    EXPECT_ERROR(quant::calib::recommended_tokens(QUANT_GPTQ, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(c.add(quant::span<const float>(x.data(), cols + 1)), QUANT_ERR_SHAPE_MISMATCH);
    EXPECT_ERROR(c.add(x, 1, cols + 1), QUANT_ERR_SHAPE_MISMATCH);
    std::vector<float> nan_x(cols, 1.0f);
    nan_x[3] = std::nanf("");
    EXPECT_ERROR(c.add(nan_x), QUANT_ERR_NON_FINITE);
    CHECK(c.tokens() == half);

    quant::options o;
    o.damp_percent(0.01).block_size(128).act_order(true).symmetric(false).static_groups(false).mse_search(false)
        .sample_tokens(256).threads(1);
    EXPECT_ERROR(o.damp_percent(-1.0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(o.block_size(0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(o.sample_tokens(0), QUANT_ERR_INVALID_ARGUMENT);

    double rtn = output_error(test_x, 256, w, quant::weight::quantize(quant::method::int4(128), w, rows, cols).dequantize(), rows, cols);
    quant::weight g = quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols, c, o);
    CHECK(g.group_index().size() == cols); // act-order keeps g_idx
    double eg = output_error(test_x, 256, w, g.dequantize(), rows, cols);
    quant::weight a = quant::weight::quantize(quant::method::awq(4, 128), w, rows, cols, c);
    CHECK(a.input_scales().size() == cols);
    double ea = output_error(test_x, 256, w, a.dequantize(), rows, cols);
    std::printf("  layer 5 query, held-out tokens: RTN INT4 g128 %.4e, GPTQ %.4e, AWQ %.4e\n", rtn, eg, ea);
    CHECK(eg < rtn && ea < rtn);

    std::vector<quant::span<const float>> ws{quant::span<const float>(w), quant::span<const float>(wv)};
    std::vector<quant::weight> qv = quant::weight::quantize_group(quant::method::awq(4, 128), ws, {rows, rows}, cols, c);
    CHECK(qv.size() == 2 && qv[0].input_scales().size() == cols &&
          std::memcmp(qv[0].input_scales().data(), qv[1].input_scales().data(), cols * sizeof(float)) == 0);
    quant::weight sq = quant::weight::quantize(quant::method::smoothquant(0.5), w, rows, cols, c);
    CHECK(sq.input_scales().size() == cols && sq.scales().size() == rows);

    // A calibration without the Hessian serves AWQ and SmoothQuant, not GPTQ; set_hessian gives it one.
    const std::size_t nh = 256;
    quant::calib light(cols, 0, o);
    light.add(quant::span<const float>(x.data(), nh * cols));
    CHECK(light.tokens() == nh);
    quant::weight la = quant::weight::quantize(quant::method::awq(4, 128), w, rows, cols, light);
    CHECK(la.input_scales().size() == cols);
    EXPECT_ERROR(quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols, light), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<double> h(cols * cols, 0.0);
    for (std::size_t t = 0; t < nh; t++)
        for (std::size_t i = 0; i < cols; i++)
            for (std::size_t j = 0; j <= i; j++) h[i * cols + j] += 2.0 * x[t * cols + i] * x[t * cols + j] / nh;
    EXPECT_ERROR(light.set_hessian(quant::span<const double>(h.data(), h.size() - 1), cols, nh), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(light.set_hessian(h, cols + 1, nh), QUANT_ERR_SHAPE_MISMATCH);
    EXPECT_ERROR(light.set_hessian(h, cols, 0), QUANT_ERR_INVALID_ARGUMENT);
    light.set_hessian(h, cols, nh);
    quant::weight lg = quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols, light);
    quant::calib full(cols, quant::calib::hessian);
    full.add(quant::span<const float>(x.data(), nh * cols));
    double e_light = output_error(test_x, 256, w, lg.dequantize(), rows, cols);
    double e_full = output_error(test_x, 256, w, quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols, full).dequantize(), rows, cols);
    std::printf("  GPTQ with a Hessian set from outside %.4e, accumulated %.4e\n", e_light, e_full);
    CHECK(std::fabs(e_light - e_full) <= 0.01 * e_full);
    EXPECT_ERROR(quant::calib(cols, 0x80), QUANT_ERR_INVALID_ARGUMENT);

    // W8A8: per-token INT8 activations of x / s, then the INT8 product with the SmoothQuant weight.
    const std::size_t m = 16;
    quant::int8_activations act = quant::quantize_activations(quant::span<const float>(test_x.data(), m * cols), m, cols, sq.input_scales());
    CHECK(act.codes.size() == m * cols && act.token_scales.size() == m);
    std::vector<float> y = quant::int8_gemm(act.codes, act.token_scales, sq.int8_data(), sq.scales(), m, rows, cols);
    bool exact = y.size() == m * rows;
    double num = 0, den = 0;
    for (std::size_t i = 0; exact && i < m; i++) {
        for (std::size_t j = 0; j < rows; j++) {
            std::int32_t acc = 0;
            double ref = 0;
            for (std::size_t l = 0; l < cols; l++) {
                acc += (std::int32_t)act.codes[i * cols + l] * (std::int32_t)sq.int8_data()[j * cols + l];
                ref += (double)test_x[i * cols + l] * w[j * cols + l];
            }
            exact = exact && y[i * rows + j] == ((float)acc * act.token_scales[i]) * sq.scales()[j];
            num += (y[i * rows + j] - ref) * (y[i * rows + j] - ref);
            den += ref * ref;
        }
    }
    std::printf("  SmoothQuant W8A8 through quant_int8_gemm, 16 tokens: relative output error %.4e\n", num / den);
    CHECK(exact);
    CHECK(num / den < 1e-2);
    EXPECT_ERROR(quant::quantize_activations(test_x, m, cols, quant::span<const float>(sq.input_scales().data(), cols - 1)),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    std::vector<float> zero_scales(cols, 0.0f);
    EXPECT_ERROR(quant::quantize_activations(test_x, m, cols, zero_scales), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::int8_gemm(act.codes, act.token_scales, sq.int8_data(), sq.scales(), m, rows, 0), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> small_out(m * rows - 1);
    EXPECT_ERROR(quant::int8_gemm(act.codes, act.token_scales, sq.int8_data(), sq.scales(), m, rows, cols, small_out),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::int8_gemm(act.codes, act.token_scales, sq.int8_data(), sq.scales(), m + 1, rows, cols),
                 QUANT_ERR_BUFFER_TOO_SMALL);

    quant::calib other(cols + 1);
    EXPECT_ERROR(quant::weight::quantize(quant::method::awq(4, 128), w, rows, cols, other), QUANT_ERR_SHAPE_MISMATCH);
    quant::calib empty(cols);
    EXPECT_ERROR(quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols, empty), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::weight::quantize_group(quant::method::awq(4, 128), {}, {}, cols, c), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::calib(0), QUANT_ERR_INVALID_ARGUMENT);
}

// GGUF blocks, GPTQ/AWQ checkpoint packing and f16/bf16 sources (the engine formats).
static void test_ggml() {
    using namespace quant;
    CHECK(ggml_block_size(ggml::q8_0) == 32 && ggml_block_size(ggml::q4_k) == 256);
    CHECK(ggml_type_size(ggml::q4_0) == 18 && ggml_type_size(ggml::q8_0) == 34 && ggml_type_size(ggml::q6_k) == 210);
    CHECK(ggml_row_size(ggml::q8_0, 384) == 12 * 34 && ggml_row_size(ggml::q4_k, 512) == 2 * 144);
    CHECK(ggml_row_size(ggml::q8_0, 0) == 0);
    CHECK(ggml_type_name(ggml::q4_1) == "q4_1" && ggml_type_name(ggml::q6_k) == "q6_K");
    CHECK(ggml_type_size(ggml::q2_k) == 84 && ggml_type_size(ggml::q3_k) == 110 && ggml_type_size(ggml::q5_k) == 176);
    CHECK(ggml_type_name(ggml::q2_k) == "q2_K" && ggml_type_name(ggml::q3_k) == "q3_K" && ggml_type_name(ggml::q5_k) == "q5_K");
    CHECK(ggml_type_size(ggml::iq4_nl) == 18 && ggml_type_size(ggml::mxfp4) == 17 && ggml_block_size(ggml::mxfp4) == 32);
    CHECK(ggml_type_name(ggml::iq4_nl) == "iq4_nl" && ggml_type_name(ggml::mxfp4) == "mxfp4");
    CHECK(ggml_type_size(ggml::iq4_xs) == 136 && ggml_block_size(ggml::iq4_xs) == 256);
    CHECK(ggml_type_size(ggml::nvfp4) == 36 && ggml_block_size(ggml::nvfp4) == 64);
    CHECK(ggml_type_name(ggml::iq4_xs) == "iq4_xs" && ggml_type_name(ggml::nvfp4) == "nvfp4");
    CHECK(ggml_type_size(ggml::tq1_0) == 54 && ggml_type_size(ggml::tq2_0) == 66 && ggml_block_size(ggml::tq1_0) == 256);
    CHECK(ggml_type_name(ggml::tq1_0) == "tq1_0" && ggml_type_name(ggml::tq2_0) == "tq2_0");
    // The ternary types give back a row of -0.25, 0 and 0.25 exactly (their scale is the largest magnitude).
    for (std::int32_t t : {ggml::tq1_0, ggml::tq2_0}) {
        std::vector<float> tern(512);
        for (std::size_t i = 0; i < tern.size(); i++) tern[i] = 0.25f * (float)((i * 5 + i / 7) % 3) - 0.25f;
        CHECK(ggml_dequantize(t, ggml_quantize(t, tern, 2, 256), 512) == tern);
        EXPECT_ERROR(ggml_row_size(t, 128), QUANT_ERR_INVALID_ARGUMENT);
    }
    EXPECT_ERROR(ggml_block_size(1), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_type_size(99), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_row_size(ggml::q8_0, 33), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_row_size(-1, 32), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_type_name(0), QUANT_ERR_INVALID_ARGUMENT);

    // Q8_0 round trip of real MiniLM rows: |x - x'| <= d/2 + 127 |d - f16(d)| < 0.6 d, d = amax/127 per block.
    const std::size_t rows = 4, cols = 384;
    std::vector<float> w = load("encoder.layer.0.attention.self.query.weight", rows * cols);
    std::vector<std::uint8_t> blocks = ggml_quantize(ggml::q8_0, w, rows, cols);
    CHECK(blocks.size() == rows * ggml_row_size(ggml::q8_0, cols));
    std::vector<float> back = ggml_dequantize(ggml::q8_0, blocks, rows * cols);
    bool within = back.size() == w.size();
    for (std::size_t b = 0; within && b < w.size() / 32; b++) {
        float amax = 0;
        for (std::size_t i = 0; i < 32; i++) amax = std::fmax(amax, std::fabs(w[b * 32 + i]));
        for (std::size_t i = 0; i < 32; i++) within = within && std::fabs(w[b * 32 + i] - back[b * 32 + i]) <= 0.6f * amax / 127;
    }
    CHECK(within);
    // Every other type decodes back within a few of its steps (a loose sanity check of the layouts;
    // wider for 2 and 3 bits and for MXFP4).
    for (std::int32_t t : {ggml::q4_0, ggml::q4_1, ggml::q5_0, ggml::q5_1, ggml::q2_k, ggml::q3_k, ggml::q4_k,
                           ggml::q5_k, ggml::q6_k, ggml::iq4_nl, ggml::mxfp4, ggml::iq4_xs, ggml::nvfp4}) {
        std::vector<float> wt = load("encoder.layer.0.attention.self.query.weight", 512);
        std::vector<float> d = ggml_dequantize(t, ggml_quantize(t, wt, 1, 512), 512);
        double num = 0, den = 0;
        for (std::size_t i = 0; i < 512; i++) {
            num += (double)(d[i] - wt[i]) * (d[i] - wt[i]);
            den += (double)wt[i] * wt[i];
        }
        CHECK(num / den < (t == ggml::q2_k ? 0.15 : t == ggml::q3_k || t == ggml::mxfp4 ? 0.05 : 0.02));
    }
    // f16 and bf16 sources give the bytes of the same values as float.
    std::vector<std::uint16_t> h = f32_to_f16(w), bf = f32_to_bf16(w);
    CHECK(ggml_quantize(ggml::q4_0, dtype::f16, h, rows, cols) == ggml_quantize(ggml::q4_0, f16_to_f32(h), rows, cols));
    CHECK(ggml_quantize(ggml::q4_k, dtype::bf16, quant::span<const std::uint16_t>(bf.data(), 512), 1, 512) ==
          ggml_quantize(ggml::q4_k, bf16_to_f32(quant::span<const std::uint16_t>(bf.data(), 512)), 1, 512));

    // The importance-weighted path: no weights is ggml_quantize; Q8_0 ignores them; a K-quant
    // with weights writes other bytes; the weights are checked.
    {
        quant::span<const float> w512(w.data(), 512);
        std::vector<float> imp(512);
        for (std::size_t i = 0; i < 512; i++) imp[i] = 1.0f + (float)(i % 5);
        CHECK(ggml_quantize_weighted(ggml::q4_k, w512, 1, 512, {}) == ggml_quantize(ggml::q4_k, w512, 1, 512));
        CHECK(ggml_quantize_weighted(ggml::q8_0, w512, 1, 512, imp) == ggml_quantize(ggml::q8_0, w512, 1, 512));
        CHECK(ggml_quantize_weighted(ggml::q4_k, w512, 1, 512, imp) != ggml_quantize(ggml::q4_k, w512, 1, 512));
        EXPECT_ERROR(ggml_quantize_weighted(ggml::q4_k, w512, 1, 512, quant::span<const float>(imp.data(), 511)),
                     QUANT_ERR_SHAPE_MISMATCH);
        imp[3] = -1.0f;
        EXPECT_ERROR(ggml_quantize_weighted(ggml::q4_k, w512, 1, 512, imp), QUANT_ERR_INVALID_ARGUMENT);
    }

    std::vector<float> nan_w(w.begin(), w.begin() + 64);
    nan_w[40] = std::nanf("");
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, nan_w, 2, 32), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, w, 1, 33), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, w, 0, 32), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_quantize(5, w, 1, 32), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, quant::span<const float>(w.data(), 31), 1, 32), QUANT_ERR_BUFFER_TOO_SMALL);
    std::vector<std::uint8_t> small(33, 0xAB);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, w, 1, 32, small), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(small[0] == 0xAB && small[32] == 0xAB);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, dtype::f32, h, 1, 32), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, static_cast<dtype>(7), h, 1, 32), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<std::uint16_t> h_nan(h.begin(), h.begin() + 32);
    h_nan[5] = 0x7e00;
    EXPECT_ERROR(ggml_quantize(ggml::q8_0, dtype::f16, h_nan, 1, 32), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(ggml_dequantize(ggml::q8_0, blocks, 33), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(ggml_dequantize(ggml::q8_0, quant::span<const std::uint8_t>(blocks.data(), 33), 32), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(ggml_dequantize(99, blocks, 32), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<std::uint8_t> inf_block(blocks.begin(), blocks.begin() + 34);
    inf_block[0] = 0x00;
    inf_block[1] = 0x7c; // d = +inf
    EXPECT_ERROR(ggml_dequantize(ggml::q8_0, inf_block, 32), QUANT_ERR_NON_FINITE);
}

static void test_half_sources() {
    using namespace quant;
    const std::size_t rows = 8, cols = 384;
    std::vector<float> w0 = load("encoder.layer.0.attention.self.query.weight", rows * cols);
    for (dtype dt : {dtype::f16, dtype::bf16}) {
        std::vector<std::uint16_t> h = dt == dtype::f16 ? f32_to_f16(w0) : f32_to_bf16(w0);
        std::vector<float> w = dt == dtype::f16 ? f16_to_f32(h) : bf16_to_f32(h);
        int8_matrix a = int8_quantize(dt, h, rows, cols, 64), b = int8_quantize(w, rows, cols, 64);
        CHECK(a.codes == b.codes && a.scales == b.scales);
        int4_matrix c = int4_quantize(dt, h, rows, cols, 128), d = int4_quantize(w, rows, cols, 128);
        CHECK(c.codes == d.codes && c.scales == d.scales && c.zeros == d.zeros);
        fp8_matrix e = fp8_e4m3_quantize(dt, h, rows, cols, 0), f = fp8_e4m3_quantize(w, rows, cols, 0);
        CHECK(e.codes == f.codes && e.scales == f.scales);
        weight q = weight::quantize(method::int4(128), dt, h, rows, cols);
        CHECK(q.dequantize() == weight::quantize(method::int4(128), w, rows, cols).dequantize());
    }
    std::vector<std::uint16_t> h = f32_to_f16(w0);
    std::vector<std::uint16_t> h_nan(h.begin(), h.begin() + cols);
    h_nan[7] = 0x7c00; // +inf
    EXPECT_ERROR(int8_quantize(dtype::f16, h_nan, 1, cols, 0), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(int8_quantize(static_cast<dtype>(3), h, rows, cols, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(int8_quantize(dtype::f16, h, rows + 1, cols, 0), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(int4_quantize(dtype::bf16, h, 0, cols, 128), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(int4_quantize(dtype::f16, h_nan, 1, cols, 128), QUANT_ERR_NON_FINITE);
    std::vector<std::uint8_t> codes(rows * cols / 2);
    std::vector<float> scales(rows * 3 - 1);
    std::vector<std::uint8_t> zeros(rows * 3 - 1);
    EXPECT_ERROR(int4_quantize(dtype::f16, h, rows, cols, 128, codes, scales, zeros), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(fp8_e4m3_quantize(dtype::f32, h, rows, cols, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(fp8_e4m3_quantize(dtype::bf16, h, rows, 0, 0), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(fp8_e4m3_quantize(dtype::f16, h_nan, 1, cols, 0), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(weight::quantize(method::int8(), static_cast<dtype>(-1), h, rows, cols), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(weight::quantize(method::int8(), dtype::f16, h_nan, 1, cols), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(weight::quantize(method::gptq(4, 128), dtype::f16, h, rows, cols), QUANT_ERR_INVALID_ARGUMENT); // no calib
}

// f16 bits -> float, for the unpacking below.
static float half(std::uint16_t bits) { return quant::f16_to_f32(quant::span<const std::uint16_t>(&bits, 1))[0]; }

static void test_packing() {
    using namespace quant;
    const std::size_t rows = 384, cols = 384, n = 256, gs = 128, groups = cols / gs;
    std::vector<float> w = load("encoder.layer.5.attention.self.query.weight", rows * cols);
    std::vector<float> x = load("x_calib.layer5.attn_in", n * cols);
    calib c(cols);
    c.add(x);
    options o;
    o.act_order(true).sample_tokens(128);
    weight g = weight::quantize(method::gptq(4, gs), w, rows, cols, c, o);

    // GPTQ: sizes, then unpack v2 as engines do and get back the dequantized weight up to f16 scales.
    weight::gptq_lengths s = g.gptq_sizes();
    CHECK(s.qweight == cols * 4 / 32 * rows && s.qzeros == groups * rows * 4 / 32 && s.scales == groups * rows && s.g_idx == cols);
    weight::gptq_tensors v2 = g.pack_gptq(2), v1 = g.pack_gptq(1);
    CHECK(v1.qweight == v2.qweight && v1.scales == v2.scales && v1.g_idx == v2.g_idx && v1.qzeros != v2.qzeros);
    std::vector<float> deq = g.dequantize();
    bool ok = true;
    std::size_t zero_ones = 0;
    for (std::size_t r = 0; r < rows; r++) {
        for (std::size_t j = 0; j < cols; j++) {
            std::size_t grp = (std::size_t)v2.g_idx[j];
            std::uint32_t q = ((std::uint32_t)v2.qweight[(j / 8) * rows + r] >> (4 * (j % 8))) & 15;
            std::uint32_t z = ((std::uint32_t)v2.qzeros[grp * (rows / 8) + r / 8] >> (4 * (r % 8))) & 15;
            std::uint32_t z1 = ((std::uint32_t)v1.qzeros[grp * (rows / 8) + r / 8] >> (4 * (r % 8))) & 15;
            if (z > 0) ok = ok && z1 == z - 1; else zero_ones++;
            float scale = half(v2.scales[grp * rows + r]);
            float v = scale * ((float)q - (float)z);
            ok = ok && std::fabs(v - deq[r * cols + j]) <= 16 * std::fabs(scale) / 1024 + 1e-7f;
        }
    }
    CHECK(ok);
    weight::gptq_tensors t3 = weight::quantize(method::gptq(3, gs), w, rows, cols, c).pack_gptq(2);
    CHECK(t3.qweight.size() == cols * 3 / 32 * rows && t3.qzeros.size() == groups * rows * 3 / 32);

    EXPECT_ERROR(g.pack_gptq(3), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<std::int32_t> qw(s.qweight - 1, 7), qz(s.qzeros), gi(s.g_idx);
    std::vector<std::uint16_t> sc(s.scales);
    EXPECT_ERROR(g.pack_gptq(2, qw, qz, sc, gi), QUANT_ERR_BUFFER_TOO_SMALL);
    CHECK(qw[0] == 7 && qw.back() == 7);
    weight i8 = weight::quantize(method::int8(), w, rows, cols);
    EXPECT_ERROR(i8.gptq_sizes(), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(weight::quantize(method::gptq(4, gs), w, rows - 1, cols, c).pack_gptq(2), QUANT_ERR_INVALID_ARGUMENT); // 383*4 % 32
    EXPECT_ERROR(weight(nullptr).gptq_sizes(), QUANT_ERR_NULL_POINTER);

    // AWQ GEMM: the packed tensors hold W diag(s), i.e. the dequantized weight times the input scales.
    weight a = weight::quantize(method::awq(4, gs), w, rows, cols, c, o);
    weight::awq_lengths as = a.awq_sizes();
    CHECK(as.qweight == cols * rows / 8 && as.qzeros == groups * rows / 8 && as.scales == groups * rows);
    weight::awq_tensors at = a.pack_awq();
    std::vector<float> adeq = a.dequantize();
    span<const float> in_s = a.input_scales();
    const int inv[8] = {0, 4, 1, 5, 2, 6, 3, 7}; // nibble of output 8c + k (order 0,2,4,6,1,3,5,7)
    ok = in_s.size() == cols;
    for (std::size_t r = 0; ok && r < rows; r++) {
        for (std::size_t j = 0; j < cols; j++) {
            std::size_t grp = j / gs;
            std::uint32_t q = ((std::uint32_t)at.qweight[j * (rows / 8) + r / 8] >> (4 * inv[r % 8])) & 15;
            std::uint32_t z = ((std::uint32_t)at.qzeros[grp * (rows / 8) + r / 8] >> (4 * inv[r % 8])) & 15;
            float scale = half(at.scales[grp * rows + r]);
            float v = scale * ((float)q - (float)z), want = adeq[r * cols + j] * in_s[j];
            ok = ok && std::fabs(v - want) <= 16 * std::fabs(scale) / 1024 + 1e-6f * std::fabs(want) + 1e-7f;
        }
    }
    CHECK(ok);
    EXPECT_ERROR(g.awq_sizes(), QUANT_ERR_INVALID_ARGUMENT); // GPTQ with act-order
    EXPECT_ERROR(i8.pack_awq(), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<std::int32_t> aq(as.qweight), az(as.qzeros - 1);
    std::vector<std::uint16_t> ascales(as.scales);
    EXPECT_ERROR(a.pack_awq(aq, az, ascales), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(weight::quantize(method::gptq(3, gs), w, rows, cols, c).awq_sizes(), QUANT_ERR_UNSUPPORTED);
}

// SIMD level and threads: process-wide settings that never change results.
static void test_simd_threads() {
    using namespace quant;
    const std::int32_t start = simd_level();
    const std::string name = simd_level_name(start);
    std::printf("  SIMD level %s, threads %zu\n", name.c_str(), threads());
    CHECK(name == "scalar" || name == "avx2" || name == "avx512" || name == "neon");
    CHECK(simd_level_name(QUANT_SIMD_SCALAR) == "scalar" && simd_level_name(QUANT_SIMD_AVX2) == "avx2" &&
          simd_level_name(QUANT_SIMD_AVX512) == "avx512" && simd_level_name(QUANT_SIMD_NEON) == "neon");
    CHECK(simd_level_name(9).empty() && simd_level_name(QUANT_SIMD_AUTO).empty());

    const std::size_t rows = 512, cols = 384; // 196608 values: enough for two threads
    std::vector<float> w = load("encoder.layer.0.intermediate.dense.weight", rows * cols);
    int4_matrix best = int4_quantize(w, rows, cols, 128);
    set_simd_level(QUANT_SIMD_SCALAR);
    CHECK(simd_level() == QUANT_SIMD_SCALAR);
    int4_matrix scalar = int4_quantize(w, rows, cols, 128);
    CHECK(scalar.codes == best.codes && scalar.scales == best.scales && scalar.zeros == best.zeros);
    EXPECT_ERROR(set_simd_level(7), QUANT_ERR_INVALID_ARGUMENT);
#if defined(__x86_64__) || defined(_M_X64)
    EXPECT_ERROR(set_simd_level(QUANT_SIMD_NEON), QUANT_ERR_UNSUPPORTED);
#elif defined(__aarch64__)
    EXPECT_ERROR(set_simd_level(QUANT_SIMD_AVX2), QUANT_ERR_UNSUPPORTED);
#endif
    CHECK(simd_level() == QUANT_SIMD_SCALAR); // unchanged by the failed calls
    set_simd_level(QUANT_SIMD_AUTO);
    CHECK(simd_level() == start);

    const std::size_t before = threads();
    set_threads(2);
    CHECK(threads() == 2);
    int4_matrix two = int4_quantize(w, rows, cols, 128);
    CHECK(two.codes == best.codes && two.scales == best.scales && two.zeros == best.zeros);
    EXPECT_ERROR(set_threads(max_threads + 1), QUANT_ERR_INVALID_ARGUMENT);
    CHECK(threads() == 2);
    set_threads(before);
    CHECK(threads() == before);
}

static void test_fp8_block() {
    const std::size_t rows = 130, cols = 140, b = QUANT_FP8_BLOCK_DEEPSEEK;
    std::vector<float> w(rows * cols);
    for (std::size_t i = 0; i < w.size(); i++) w[i] = std::sin((float)i) * (1.0f + (float)(i / cols));
    CHECK(quant::fp8_block_scale_count(rows, cols, b, b) == 4);
    quant::fp8_block_matrix q = quant::fp8_block_quantize(w, rows, cols, b, b);
    CHECK(q.codes.size() == rows * cols && q.scale_inv.size() == 4);
    std::vector<float> back = quant::fp8_block_dequantize(q, rows, cols, b, b);
    bool within = true;
    for (std::size_t i = 0; i < w.size(); i++) {
        float s = q.scale_inv[(i / cols / b) * 2 + (i % cols) / b];
        within = within && std::fabs(back[i] - w[i]) <= std::fmax(std::fabs(w[i]) / 16, s / 1024) * 1.0001f;
    }
    CHECK(within);
    // Blocks of 1 x k are the grouped quantizer with groups of k (DeepSeek-V3's act_quant).
    quant::fp8_block_matrix a = quant::fp8_block_quantize(w, rows, cols, 1, b);
    quant::fp8_matrix g = quant::fp8_e4m3_quantize(w, rows, cols, b);
    CHECK(a.codes == g.codes && a.scale_inv == g.scales);
    std::vector<std::uint16_t> h = quant::f32_to_bf16(w);
    std::vector<float> hw = quant::bf16_to_f32(h);
    quant::fp8_block_matrix qh = quant::fp8_block_quantize(quant::dtype::bf16, h, rows, cols, b, b);
    quant::fp8_block_matrix qf = quant::fp8_block_quantize(hw, rows, cols, b, b);
    CHECK(qh.codes == qf.codes && qh.scale_inv == qf.scale_inv);
    EXPECT_ERROR(quant::fp8_block_quantize(quant::dtype::f32, h, rows, cols, b, b), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::fp8_block_quantize(w, rows, cols, 0, b), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = w;
    bad[9] = std::nanf("");
    EXPECT_ERROR(quant::fp8_block_quantize(bad, rows, cols, b, b, q.codes, q.scale_inv), QUANT_ERR_NON_FINITE);
    CHECK(q.scale_inv[0] == 0.0f && q.codes[0] == 0);
    EXPECT_ERROR(quant::fp8_block_quantize(w, rows, cols, b, b, q.codes, quant::span<float>(q.scale_inv.data(), 3)),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::fp8_block_dequantize(q.codes, quant::span<const float>(q.scale_inv.data(), 3), rows, cols, b,
                                             b, back),
                 QUANT_ERR_BUFFER_TOO_SMALL);
}

static void test_bnb4() {
    const std::size_t n = 301;
    std::vector<float> w(n);
    for (std::size_t i = 0; i < n; i++) w[i] = std::sin((float)i) * (1.0f + (float)(i / 40));
    CHECK(quant::bnb4_absmax_count(n, 64) == 5 && quant::bnb4_absmax_count(n, 48) == 0);
    CHECK(quant::bnb4_packed_size(n) == 151 && quant::bnb4_packed_size(0) == 0);
    for (quant::bnb4_type t : {quant::bnb4_type::nf4, quant::bnb4_type::fp4}) {
        quant::bnb4_tensor q = quant::bnb4_quantize(t, w);
        CHECK(q.codes.size() == 151 && q.absmax.size() == 5);
        std::vector<float> back = quant::bnb4_dequantize(t, q, n);
        bool within = true;
        for (std::size_t i = 0; i < n; i++) within = within && std::fabs(back[i] - w[i]) <= q.absmax[i / 64] / 6 * 1.0001f;
        CHECK(within);
    }
    std::vector<std::uint16_t> h = quant::f32_to_bf16(w);
    std::vector<float> hw = quant::bf16_to_f32(h);
    quant::bnb4_tensor qh = quant::bnb4_quantize(quant::bnb4_type::nf4, quant::dtype::bf16, h);
    quant::bnb4_tensor qf = quant::bnb4_quantize(quant::bnb4_type::nf4, hw);
    CHECK(qh.codes == qf.codes && qh.absmax == qf.absmax);
    EXPECT_ERROR(quant::bnb4_quantize(quant::bnb4_type::nf4, quant::dtype::f32, h), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_quantize(static_cast<quant::bnb4_type>(0), w), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_quantize(quant::bnb4_type::nf4, w, 100), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = w;
    bad[9] = std::nanf("");
    EXPECT_ERROR(quant::bnb4_quantize(quant::bnb4_type::fp4, bad, 64, qf.codes, qf.absmax), QUANT_ERR_NON_FINITE);
    CHECK(qf.codes[0] == 0 && qf.absmax[0] == 0.0f);
    std::vector<float> out(n);
    EXPECT_ERROR(quant::bnb4_dequantize(quant::bnb4_type::nf4, qh.codes,
                                        quant::span<const float>(qh.absmax.data(), 4), n, 64, out),
                 QUANT_ERR_BUFFER_TOO_SMALL);
}

// bitsandbytes double quantization: the round trip, the offset rule, bitsandbytes' own bytes given its
// offset (tests/data/bnb4/nested_3blocks), errors.
static std::vector<unsigned char> read_bnb4(const std::string &name) {
    std::ifstream in(std::string(QUANT_TEST_DATA_DIR) + "/bnb4/" + name, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

static void test_bnb4_nested() {
    const std::size_t n = 64 * 300 + 5;
    std::vector<float> w(n);
    for (std::size_t i = 0; i < n; i++) w[i] = std::sin((float)i) * (1.0f + (float)(i % 13));
    CHECK(QUANT_BNB4_NESTED_BLOCKSIZE == 256);
    CHECK(quant::bnb4_nested_count(n, 64) == 2 && quant::bnb4_nested_count(n, 48) == 0);
    for (quant::bnb4_type t : {quant::bnb4_type::nf4, quant::bnb4_type::fp4}) {
        quant::bnb4_tensor plain = quant::bnb4_quantize(t, w);
        quant::bnb4_nested_tensor q = quant::bnb4_quantize_nested(t, w);
        CHECK(q.codes == plain.codes && q.qabsmax.size() == 301 && q.absmax2.size() == 2);
        CHECK(q.offset == quant::bnb4_absmax_mean(plain.absmax));
        std::vector<float> rec = quant::bnb4_nested_absmax(q);
        bool within = true;
        for (std::size_t i = 0; i < rec.size(); i++)
            within = within && std::fabs(rec[i] - plain.absmax[i]) <= 0.0352f * q.absmax2[i / 256] + 1e-6f * q.offset;
        CHECK(within);
        quant::bnb4_tensor via{q.codes, rec};
        CHECK(quant::bnb4_dequantize_nested(t, q, n) == quant::bnb4_dequantize(t, via, n));
        CHECK(quant::bnb4_quantize_nested(t, w, 64, 0.5f).offset == 0.5f);
    }
    std::vector<std::uint16_t> h = quant::f32_to_bf16(w);
    quant::bnb4_nested_tensor qh = quant::bnb4_quantize_nested(quant::bnb4_type::nf4, quant::dtype::bf16, h);
    quant::bnb4_nested_tensor qf = quant::bnb4_quantize_nested(quant::bnb4_type::nf4, quant::bf16_to_f32(h));
    CHECK(qh.codes == qf.codes && qh.qabsmax == qf.qabsmax && qh.absmax2 == qf.absmax2 && qh.offset == qf.offset);

    // bitsandbytes' bytes given its offset.
    std::vector<unsigned char> raw = read_bnb4("nested_3blocks.in.f32");
    std::vector<float> x(raw.size() / 4);
    std::memcpy(x.data(), raw.data(), raw.size());
    CHECK(x.size() == 35141);
    for (const char *t : {"nf4", "fp4"}) {
        quant::bnb4_type ty = std::string(t) == "nf4" ? quant::bnb4_type::nf4 : quant::bnb4_type::fp4;
        std::string pre = std::string("nested_3blocks.") + t;
        std::vector<unsigned char> ob = read_bnb4(pre + ".nested.offset.f32");
        float offset = 0.0f;
        CHECK(ob.size() == 4);
        if (ob.size() == 4) std::memcpy(&offset, ob.data(), 4);
        quant::bnb4_nested_tensor q = quant::bnb4_quantize_nested(ty, x, 64, offset);
        std::vector<unsigned char> a2(q.absmax2.size() * 4);
        std::memcpy(a2.data(), q.absmax2.data(), a2.size());
        CHECK(q.offset == offset && q.codes == read_bnb4(pre + ".codes.u8"));
        CHECK(q.qabsmax == read_bnb4(pre + ".nested.qabsmax.u8") && a2 == read_bnb4(pre + ".nested.absmax2.f32"));
    }

    EXPECT_ERROR(quant::bnb4_quantize_nested(static_cast<quant::bnb4_type>(0), w), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_quantize_nested(quant::bnb4_type::nf4, w, 100), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_quantize_nested(quant::bnb4_type::nf4, w, 64, std::nanf("")), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_quantize_nested(quant::bnb4_type::nf4, quant::dtype::f32, h), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::bnb4_absmax_mean(quant::span<const float>(w.data(), 0)), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = w;
    bad[9000] = std::nanf("");
    EXPECT_ERROR(quant::bnb4_quantize_nested(quant::bnb4_type::fp4, bad, 64, std::nullopt, qf.codes, qf.qabsmax,
                                             qf.absmax2),
                 QUANT_ERR_NON_FINITE);
    CHECK(qf.codes[0] == 0 && qf.qabsmax[0] == 0 && qf.absmax2[0] == 0.0f);
    std::vector<float> out(n);
    EXPECT_ERROR(quant::bnb4_dequantize_nested(quant::bnb4_type::nf4, qh.codes, qh.qabsmax,
                                               quant::span<const float>(qh.absmax2.data(), 1), qh.offset, n, 64, out),
                 QUANT_ERR_BUFFER_TOO_SMALL);
    std::vector<float> rec(qh.qabsmax.size());
    EXPECT_ERROR(quant::bnb4_nested_absmax(qh.qabsmax, qh.absmax2, INFINITY, rec), QUANT_ERR_INVALID_ARGUMENT);
    qh.absmax2[1] = INFINITY;
    EXPECT_ERROR(quant::bnb4_dequantize_nested(quant::bnb4_type::nf4, qh, n), QUANT_ERR_NON_FINITE);
}

// MX and NVFP4: the reference fixture of tests/data/mx (3 x 37), the 16-bit sources, errors.
static std::vector<unsigned char> read_mx(const std::string &name) {
    std::ifstream in(std::string(QUANT_TEST_DATA_DIR) + "/mx/" + name, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
static std::uint32_t le32(const unsigned char *p) {
    return (std::uint32_t)p[0] | (std::uint32_t)p[1] << 8 | (std::uint32_t)p[2] << 16 | (std::uint32_t)p[3] << 24;
}

static void test_mx_nvfp4() {
    std::vector<unsigned char> in = read_mx("input_b.bin");
    CHECK(in.size() == 8 + 3 * 37 * 4);
    if (in.size() != 8 + 3 * 37 * 4) return;
    const std::size_t rows = 3, cols = 37, n = rows * cols;
    std::vector<float> x(n);
    std::memcpy(x.data(), in.data() + 8, n * sizeof(float));
    const char *names[6] = {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8"};
    for (int e = 0; e < 6; e++) {
        auto elem = static_cast<quant::mx_elem>(e);
        std::vector<unsigned char> want = read_mx(std::string(names[e]) + "_b.bin");
        std::size_t nc = le32(want.data()), ns = le32(want.data() + 4);
        quant::mx_matrix q = quant::mx_quantize(elem, x, rows, cols);
        CHECK(q.codes.size() == nc && std::memcmp(q.codes.data(), want.data() + 8, nc) == 0);
        CHECK(q.scales.size() == ns && std::memcmp(q.scales.data(), want.data() + 8 + nc, ns) == 0);
        std::vector<float> y = quant::mx_dequantize(elem, q, rows, cols);
        CHECK(std::memcmp(y.data(), want.data() + 8 + nc + ns, n * sizeof(float)) == 0);
    }
    std::vector<unsigned char> want = read_mx("nvfp4_b.bin");
    std::size_t nc = le32(want.data()), ns = le32(want.data() + 4);
    quant::nvfp4_matrix q = quant::nvfp4_quantize(x, rows, cols);
    CHECK(std::memcmp(&q.global_scale, want.data() + 8, 4) == 0);
    CHECK(q.codes.size() == nc && std::memcmp(q.codes.data(), want.data() + 12, nc) == 0);
    CHECK(q.scales.size() == ns && std::memcmp(q.scales.data(), want.data() + 12 + nc, ns) == 0);
    std::vector<float> y = quant::nvfp4_dequantize(q, rows, cols);
    CHECK(std::memcmp(y.data(), want.data() + 12 + nc + ns, n * sizeof(float)) == 0);

    // Under a given global scale (a fused group's larger member): compressed-tensors' bytes.
    std::vector<unsigned char> given = read_mx("nvfp4_given3_b.bin");
    float g3;
    std::memcpy(&g3, given.data() + 8, 4);
    quant::nvfp4_matrix q3 = quant::nvfp4_quantize_with_global(x, rows, cols, g3);
    CHECK(q3.global_scale == g3 && std::memcmp(q3.codes.data(), given.data() + 12, nc) == 0);
    CHECK(std::memcmp(q3.scales.data(), given.data() + 12 + nc, ns) == 0);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    CHECK(quant::nvfp4_global_scale(amax) == q.global_scale);
    EXPECT_ERROR(quant::nvfp4_global_scale(-1.0f), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::nvfp4_quantize_with_global(x, rows, cols, 0.0f), QUANT_ERR_INVALID_ARGUMENT);

    std::vector<std::uint16_t> h = quant::f32_to_f16(x);
    std::vector<float> xh = quant::f16_to_f32(h);
    quant::mx_matrix a = quant::mx_quantize(quant::mx_elem::fp4_e2m1, quant::dtype::f16, h, rows, cols);
    quant::mx_matrix b = quant::mx_quantize(quant::mx_elem::fp4_e2m1, xh, rows, cols);
    CHECK(a.codes == b.codes && a.scales == b.scales);
    quant::nvfp4_matrix qa = quant::nvfp4_quantize(quant::dtype::f16, h, rows, cols);
    quant::nvfp4_matrix qb = quant::nvfp4_quantize(xh, rows, cols);
    CHECK(qa.codes == qb.codes && qa.scales == qb.scales && qa.global_scale == qb.global_scale);

    CHECK(quant::mx_packed_size(static_cast<quant::mx_elem>(6), rows, cols) == 0);
    EXPECT_ERROR(quant::mx_quantize(static_cast<quant::mx_elem>(9), x, rows, cols), QUANT_ERR_INVALID_ARGUMENT);
    EXPECT_ERROR(quant::mx_quantize(quant::mx_elem::int8, x, rows + 1, cols), QUANT_ERR_BUFFER_TOO_SMALL);
    EXPECT_ERROR(quant::mx_quantize(quant::mx_elem::int8, quant::dtype::f32, h, rows, cols), QUANT_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = x;
    bad[3] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_ERROR(quant::mx_quantize(quant::mx_elem::fp8_e5m2, bad, rows, cols), QUANT_ERR_NON_FINITE);
    EXPECT_ERROR(quant::nvfp4_quantize(bad, rows, cols), QUANT_ERR_NON_FINITE);
    a.codes.pop_back();
    EXPECT_ERROR(quant::mx_dequantize(quant::mx_elem::fp4_e2m1, a, rows, cols), QUANT_ERR_BUFFER_TOO_SMALL);
    q.global_scale = -1.0f;
    EXPECT_ERROR(quant::nvfp4_dequantize(q, rows, cols), QUANT_ERR_INVALID_ARGUMENT);
}

int main() {
    test_status_version();
    test_levels();
    test_methods_config();
    test_casts();
    test_kernels();
    test_fp8_scaled();
    test_fp8_block();
    test_bnb4();
    test_bnb4_nested();
    test_smooth_scales();
    test_weight_rtn();
    test_calibrated();
    test_ggml();
    test_half_sources();
    test_packing();
    test_simd_threads();
    test_mx_nvfp4();
    std::printf("quant.hpp: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
