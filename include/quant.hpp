/*
 * quant.hpp: a small header-only C++17 layer over the C API of quant (quant.h).
 *
 *   #include <quant.hpp>
 *   quant::weight q = quant::weight::quantize(quant::method::int4(128), w, rows, cols);
 *   std::vector<float> back = q.dequantize();
 *
 * - Owners: quant::calib, quant::weight, quant::config and quant::options own their C handle
 *   (move-only; the destructor frees it). get() gives the handle, release() gives it up.
 * - Inputs and outputs are quant::span<T>: a pointer and a size, built implicitly from std::vector,
 *   std::array, a C array, or any contiguous container with data() and size() (std::span included).
 *   Every size is checked before the C call: a C function that takes a pointer without a length
 *   (for example the source matrix of a quantizer) is never given a buffer that is too short.
 * - Errors: a failing call throws quant::error, which carries the quant_status and the library's
 *   detail (quant_last_error of the calling thread). Buffer-size errors found by this layer use the
 *   same statuses (QUANT_ERR_BUFFER_TOO_SMALL, QUANT_ERR_SHAPE_MISMATCH).
 * - Thread safety is the C library's: every function may be called from any thread; an object may be
 *   read from several threads at once but not modified (add, set_*, move) while it is read.
 *
 * Requires C++17 and links like quant.h (quant::quant or quant::quant_static with CMake).
 */
#ifndef QUANT_HPP
#define QUANT_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <optional>
#include <vector>

#include "quant.h"

namespace quant {

// ---- errors -----------------------------------------------------------------------------------------

/// This thread's last error detail (quant_last_error), or "" when there is none.
inline std::string last_error() {
    std::size_t len = quant_last_error(nullptr, 0);
    if (len == 0) return std::string();
    std::string text(len + 1, '\0');
    std::size_t got = quant_last_error(&text[0], text.size());
    text.resize(got < len ? got : len);
    return text;
}

/// The static description of a status code (quant_status_string).
inline const char *status_string(quant_status status) noexcept { return quant_status_string(status); }

/// A failed call: the status, the function that failed and the library's detail.
class error : public std::runtime_error {
  public:
    error(quant_status status, std::string function, std::string detail)
        : std::runtime_error(function + ": " + quant_status_string(status) +
                             (detail.empty() ? std::string() : " (" + detail + ")")),
          status_(status), function_(std::move(function)), detail_(std::move(detail)) {}
    /// The QUANT_ERR_* code.
    quant_status status() const noexcept { return status_; }
    /// The C function (or C++ method) that failed.
    const std::string &function() const noexcept { return function_; }
    /// The human-readable detail, e.g. which argument was wrong.
    const std::string &detail() const noexcept { return detail_; }

  private:
    quant_status status_;
    std::string function_;
    std::string detail_;
};

namespace detail {
/// Throws quant::error when `status` is not QUANT_OK, with this thread's detail.
inline void check(quant_status status, const char *function) {
    if (status != QUANT_OK) throw error(status, function, last_error());
}
[[noreturn]] inline void fail(quant_status status, const char *function, const std::string &why) {
    throw error(status, function, why);
}
/// rows * cols, or SIZE_MAX when it overflows (the C call then reports the overflow itself).
inline std::size_t product(std::size_t rows, std::size_t cols) noexcept {
    if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols) {
        return std::numeric_limits<std::size_t>::max();
    }
    return rows * cols;
}
/// True when a rows x cols matrix is non-empty and its size does not overflow (else the C call
/// reports the bad shape, and no buffer is sized from it).
inline bool fits(std::size_t rows, std::size_t cols) noexcept {
    return rows != 0 && cols != 0 && product(rows, cols) != std::numeric_limits<std::size_t>::max();
}
/// A buffer that the C function reads or writes without a length must hold `need` elements.
inline void need(std::size_t have, std::size_t need, const char *what, const char *function) {
    if (need != std::numeric_limits<std::size_t>::max() && have < need) {
        fail(QUANT_ERR_BUFFER_TOO_SMALL, function,
             std::string(what) + " holds " + std::to_string(have) + " elements, needs " + std::to_string(need));
    }
}
template <class C, class = void> struct is_contiguous : std::false_type {};
template <class C>
struct is_contiguous<C, std::void_t<decltype(std::declval<C &>().data()), decltype(std::declval<C &>().size())>>
    : std::true_type {};
} // namespace detail

// ---- span -------------------------------------------------------------------------------------------

/// A non-owning view of `size()` contiguous elements (a small stand-in for C++20's std::span).
template <class T> class span {
  public:
    constexpr span() noexcept = default;
    constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N> constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    /// Any contiguous container whose data() converts to T* (vector, array, string, std::span ...).
    template <class C, class = std::enable_if_t<detail::is_contiguous<C>::value &&
                                                std::is_convertible_v<decltype(std::declval<C &>().data()), T *>>>
    constexpr span(C &container) noexcept : data_(container.data()), size_(container.size()) {}
    template <class C, class = std::enable_if_t<std::is_const_v<T> && detail::is_contiguous<const C>::value &&
                                                std::is_convertible_v<decltype(std::declval<const C &>().data()), T *>>>
    constexpr span(const C &container) noexcept : data_(container.data()), size_(container.size()) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

  private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

// ---- status and version -----------------------------------------------------------------------------

/// The library's version as (major << 16) | (minor << 8) | patch.
inline std::uint32_t version() noexcept { return quant_version(); }
/// The library's version as text, e.g. "0.2.0".
inline const char *version_string() noexcept { return quant_version_string(); }
/// True when the library's version equals the version of the header this program was compiled with.
inline bool version_matches() noexcept { return quant_version() == (std::uint32_t)QUANT_VERSION_NUMBER; }

// ---- SIMD level and kernel threads ------------------------------------------------------------------

/// The SIMD level the kernels use: QUANT_SIMD_SCALAR, QUANT_SIMD_AVX2, QUANT_SIMD_AVX512 or QUANT_SIMD_NEON.
inline std::int32_t simd_level() noexcept { return quant_simd_level(); }
/// Forces the process-wide SIMD level (QUANT_SIMD_AUTO: back to the best of the CPU); throws when the CPU
/// lacks it (QUANT_ERR_UNSUPPORTED) or the value is unknown (QUANT_ERR_INVALID_ARGUMENT); the level is then
/// unchanged. Results are the same at every level.
inline void set_simd_level(std::int32_t level) {
    detail::check(quant_set_simd_level(level), "quant_set_simd_level");
}
/// "scalar", "avx2", "avx512", "neon"; "" for an unknown level.
inline std::string simd_level_name(std::int32_t level) {
    const char *name = quant_simd_level_name(level);
    return name ? std::string(name) : std::string();
}
/// Largest count set_threads accepts (QUANT_MAX_THREADS).
constexpr std::size_t max_threads = QUANT_MAX_THREADS;
/// Threads one large kernel call may use, process-wide (0 = all cores; default 1); throws
/// QUANT_ERR_INVALID_ARGUMENT above max_threads (the count is then unchanged). Results are bit-identical for every count.
inline void set_threads(std::size_t n) { detail::check(quant_set_threads(n), "quant_set_threads"); }
/// The count set with set_threads (0 = all cores).
inline std::size_t threads() noexcept { return quant_threads(); }

// ---- levels -----------------------------------------------------------------------------------------

/// Bits per value of a level (32, 16, 16, 8, 4), 0 for an unknown level.
inline std::uint32_t level_bits(quant_level level) noexcept { return quant_level_bits(level); }
/// Size reduction against FP32 (1, 2, 2, 4, 8), 0 for an unknown level.
inline double level_reduction_factor(quant_level level) noexcept { return quant_level_reduction_factor(level); }
/// The level of a bit width (32, 16 -> FP16, 8, 4); throws for any other width.
inline quant_level level_from_bits(std::uint32_t bits) {
    quant_level out{};
    detail::check(quant_level_from_bits(bits, &out), "quant_level_from_bits");
    return out;
}
/// "FP32", "FP16", "BF16", "INT8", "INT4"; "" for an unknown level.
inline std::string level_name(quant_level level) {
    const char *name = quant_level_name(level);
    return name ? std::string(name) : std::string();
}

// ---- methods ----------------------------------------------------------------------------------------

/// A quantization method (a quant_method value) with named constructors and the C functions as members.
struct method : quant_method {
    method() noexcept : quant_method{} {}
    method(const quant_method &m) noexcept : quant_method(m) {}
    method(quant_method_kind kind, std::uint32_t bits, std::uint32_t group_size, double alpha) noexcept
        : quant_method{} {
        this->kind = kind;
        this->bits = bits;
        this->group_size = group_size;
        this->alpha = alpha;
    }
    /// INT8 symmetric; group_size 0 = one scale per row.
    static method int8(std::uint32_t group_size = 0) noexcept { return {QUANT_INT8_SYMMETRIC, 8, group_size, 0.0}; }
    /// INT4 asymmetric with integer zero points.
    static method int4(std::uint32_t group_size = 0) noexcept { return {QUANT_INT4_ASYMMETRIC, 4, group_size, 0.0}; }
    /// FP8 E4M3 with a scale per row or group.
    static method fp8(std::uint32_t group_size = 0) noexcept { return {QUANT_FP8_E4M3, 8, group_size, 0.0}; }
    /// AWQ (needs a calibration); group_size > 0.
    static method awq(std::uint32_t bits = 4, std::uint32_t group_size = 128) noexcept {
        return {QUANT_AWQ, bits, group_size, 0.0};
    }
    /// SmoothQuant W8A8 with migration strength alpha in [0, 1] (needs a calibration).
    static method smoothquant(double alpha = 0.5) noexcept { return {QUANT_SMOOTHQUANT, 8, 0, alpha}; }
    /// GPTQ at 2..8 bits (needs a calibration); group_size > 0.
    static method gptq(std::uint32_t bits = 4, std::uint32_t group_size = 128) noexcept {
        return {QUANT_GPTQ, bits, group_size, 0.0};
    }

    /// Throws quant::error (QUANT_ERR_INVALID_ARGUMENT, the detail says which rule) when invalid.
    void validate() const { detail::check(quant_method_validate(this), "quant_method_validate"); }
    /// Nominal bits per weight.
    std::uint32_t bits_per_weight() const noexcept { return quant_method_bits_per_weight(this); }
    /// 16 / nominal bits.
    double compression_ratio() const noexcept { return quant_method_compression_ratio(this); }
    /// Bits per weight including scales and zero points, for rows of `cols` inputs.
    double effective_bits(std::size_t cols) const noexcept { return quant_method_effective_bits(this, cols); }
    /// The display name, e.g. "GPTQ(4bit, group=128)".
    std::string name() const {
        std::size_t len = quant_method_name(this, nullptr, 0);
        std::string text(len + 1, '\0');
        quant_method_name(this, &text[0], text.size());
        text.resize(len);
        return text;
    }
};

/// Memory of `num_params` weights in FP16 and with a method.
struct memory_estimate {
    std::size_t fp16_bytes;
    std::size_t quant_bytes;
};
inline memory_estimate estimate_memory(std::size_t num_params, const quant_method &m) {
    memory_estimate out{0, 0};
    detail::check(quant_estimate_memory(num_params, &m, &out.fp16_bytes, &out.quant_bytes), "quant_estimate_memory");
    return out;
}

/// Owner of a quant_config: a default method plus per-layer overrides by layer name.
class config {
  public:
    explicit config(const quant_method &default_method) {
        detail::check(quant_config_new(&default_method, &handle_), "quant_config_new");
    }
    config(config &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    config &operator=(config &&other) noexcept {
        if (this != &other) {
            quant_config_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    config(const config &) = delete;
    config &operator=(const config &) = delete;
    ~config() { quant_config_free(handle_); }

    /// Uses `m` for the layer `layer_name` (UTF-8).
    config &set_layer(const std::string &layer_name, const quant_method &m) {
        detail::check(quant_config_set_layer(handle_, layer_name.c_str(), &m), "quant_config_set_layer");
        return *this;
    }
    /// The method of a layer: its override, else the default.
    method method_for_layer(const std::string &layer_name) const {
        quant_method out{};
        detail::check(quant_config_method_for_layer(handle_, layer_name.c_str(), &out),
                      "quant_config_method_for_layer");
        return method(out);
    }
    /// Throws quant::error naming the first invalid layer.
    void validate() const { detail::check(quant_config_validate(handle_), "quant_config_validate"); }

    quant_config *get() const noexcept { return handle_; }
    quant_config *release() noexcept { return std::exchange(handle_, nullptr); }

  private:
    quant_config *handle_ = nullptr;
};

// ---- plain casts ------------------------------------------------------------------------------------

namespace detail {
template <class In, class Out>
inline void cast(quant_status (*fn)(const In *, Out *, std::size_t), span<const In> src, span<Out> dst,
                 const char *name) {
    need(dst.size(), src.size(), "dst", name);
    check(fn(src.data(), dst.data(), src.size()), name);
}
template <class In, class Out>
inline std::vector<Out> cast(quant_status (*fn)(const In *, Out *, std::size_t), span<const In> src,
                             const char *name) {
    std::vector<Out> dst(src.size());
    cast<In, Out>(fn, src, span<Out>(dst), name);
    return dst;
}
template <class Out>
inline void cast8(quant_status (*fn)(const float *, Out *, std::size_t, bool), span<const float> src, span<Out> dst,
                  bool saturate, const char *name) {
    need(dst.size(), src.size(), "dst", name);
    check(fn(src.data(), dst.data(), src.size(), saturate), name);
}
} // namespace detail

/// FP32 -> FP16 bits (round to nearest even); dst holds at least src.size() values.
inline void f32_to_f16(span<const float> src, span<std::uint16_t> dst) { detail::cast(quant_f32_to_f16, src, dst, "quant_f32_to_f16"); }
inline std::vector<std::uint16_t> f32_to_f16(span<const float> src) { return detail::cast(quant_f32_to_f16, src, "quant_f32_to_f16"); }
/// FP16 bits -> FP32 (exact).
inline void f16_to_f32(span<const std::uint16_t> src, span<float> dst) { detail::cast(quant_f16_to_f32, src, dst, "quant_f16_to_f32"); }
inline std::vector<float> f16_to_f32(span<const std::uint16_t> src) { return detail::cast(quant_f16_to_f32, src, "quant_f16_to_f32"); }
/// FP32 -> BF16 bits (round to nearest even).
inline void f32_to_bf16(span<const float> src, span<std::uint16_t> dst) { detail::cast(quant_f32_to_bf16, src, dst, "quant_f32_to_bf16"); }
inline std::vector<std::uint16_t> f32_to_bf16(span<const float> src) { return detail::cast(quant_f32_to_bf16, src, "quant_f32_to_bf16"); }
/// BF16 bits -> FP32 (exact).
inline void bf16_to_f32(span<const std::uint16_t> src, span<float> dst) { detail::cast(quant_bf16_to_f32, src, dst, "quant_bf16_to_f32"); }
inline std::vector<float> bf16_to_f32(span<const std::uint16_t> src) { return detail::cast(quant_bf16_to_f32, src, "quant_bf16_to_f32"); }
/// FP32 -> FP8 E4M3FN codes; saturate clamps overflow and infinities to +-448 (else NaN).
inline void f32_to_fp8_e4m3(span<const float> src, span<std::uint8_t> dst, bool saturate = false) {
    detail::cast8(quant_f32_to_fp8_e4m3, src, dst, saturate, "quant_f32_to_fp8_e4m3");
}
inline std::vector<std::uint8_t> f32_to_fp8_e4m3(span<const float> src, bool saturate = false) {
    std::vector<std::uint8_t> dst(src.size());
    f32_to_fp8_e4m3(src, dst, saturate);
    return dst;
}
/// FP8 E4M3FN codes -> FP32 (exact).
inline void fp8_e4m3_to_f32(span<const std::uint8_t> src, span<float> dst) { detail::cast(quant_fp8_e4m3_to_f32, src, dst, "quant_fp8_e4m3_to_f32"); }
inline std::vector<float> fp8_e4m3_to_f32(span<const std::uint8_t> src) { return detail::cast(quant_fp8_e4m3_to_f32, src, "quant_fp8_e4m3_to_f32"); }
/// FP32 -> FP8 E5M2 codes; saturate clamps finite overflow and infinities to +-57344.
inline void f32_to_fp8_e5m2(span<const float> src, span<std::uint8_t> dst, bool saturate = false) {
    detail::cast8(quant_f32_to_fp8_e5m2, src, dst, saturate, "quant_f32_to_fp8_e5m2");
}
inline std::vector<std::uint8_t> f32_to_fp8_e5m2(span<const float> src, bool saturate = false) {
    std::vector<std::uint8_t> dst(src.size());
    f32_to_fp8_e5m2(src, dst, saturate);
    return dst;
}
/// FP8 E5M2 codes -> FP32 (exact).
inline void fp8_e5m2_to_f32(span<const std::uint8_t> src, span<float> dst) { detail::cast(quant_fp8_e5m2_to_f32, src, dst, "quant_fp8_e5m2_to_f32"); }
inline std::vector<float> fp8_e5m2_to_f32(span<const std::uint8_t> src) { return detail::cast(quant_fp8_e5m2_to_f32, src, "quant_fp8_e5m2_to_f32"); }

// ---- round-to-nearest kernels -----------------------------------------------------------------------

/// Number of scales of a rows x cols matrix: rows * ceil(cols / group_size) (group_size 0: rows).
inline std::size_t scale_count(std::size_t rows, std::size_t cols, std::size_t group_size) noexcept {
    return quant_scale_count(rows, cols, group_size);
}
/// Bytes of a packed INT4 matrix: rows * ceil(cols / 2).
inline std::size_t int4_packed_size(std::size_t rows, std::size_t cols) noexcept { return quant_int4_packed_size(rows, cols); }

/// INT8 symmetric codes and one scale per group.
struct int8_matrix {
    std::vector<std::int8_t> codes;
    std::vector<float> scales;
};
/// INT4 asymmetric packed codes (two a byte, even column in the low nibble), scales and zero points.
struct int4_matrix {
    std::vector<std::uint8_t> codes;
    std::vector<float> scales;
    std::vector<std::uint8_t> zeros;
};
/// INT8 symmetric quantization of a row-major rows x cols matrix into caller buffers, in one pass over
/// src. Throws on error: after an argument error nothing was written; after a value error (NaN or
/// infinity, an overflowing group) dst and scales hold zeros.
inline void int8_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size,
                          span<std::int8_t> dst, span<float> scales) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_int8_quantize");
    detail::check(quant_int8_quantize(src.data(), rows, cols, group_size, dst.data(), dst.size(), scales.data(),
                                      scales.size()),
                  "quant_int8_quantize");
}
inline int8_matrix int8_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_int8_quantize");
    int8_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scales.resize(scale_count(rows, cols, group_size));
    }
    int8_quantize(src, rows, cols, group_size, out.codes, out.scales);
    return out;
}
/// INT8 dequantization: x' = code * scale.
inline void int8_dequantize(span<const std::int8_t> src, span<const float> scales, std::size_t rows, std::size_t cols,
                            std::size_t group_size, span<float> dst) {
    const char *fn = "quant_int8_dequantize";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    if (rows != 0 && cols != 0) detail::need(scales.size(), scale_count(rows, cols, group_size), "scales", fn);
    detail::check(quant_int8_dequantize(src.data(), scales.data(), rows, cols, group_size, dst.data(), dst.size()), fn);
}
inline std::vector<float> int8_dequantize(const int8_matrix &q, std::size_t rows, std::size_t cols, std::size_t group_size) {
    std::vector<float> dst(detail::product(rows, cols) <= q.codes.size() ? rows * cols : 0);
    int8_dequantize(q.codes, q.scales, rows, cols, group_size, dst);
    return dst;
}

/// INT4 asymmetric quantization (zero points) into caller buffers; scales and zeros hold one per group.
/// One pass over src; errors as int8_quantize (a value error leaves dst, scales and zeros zero-filled).
inline void int4_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size,
                          span<std::uint8_t> dst, span<float> scales, span<std::uint8_t> zeros) {
    const char *fn = "quant_int4_quantize";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    if (scales.size() != zeros.size()) {
        detail::fail(QUANT_ERR_SHAPE_MISMATCH, fn, "scales and zeros differ in length");
    }
    detail::check(quant_int4_quantize(src.data(), rows, cols, group_size, dst.data(), dst.size(), scales.data(),
                                      zeros.data(), scales.size()),
                  fn);
}
inline int4_matrix int4_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_int4_quantize");
    int4_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(int4_packed_size(rows, cols));
        out.scales.resize(scale_count(rows, cols, group_size));
        out.zeros.resize(out.scales.size());
    }
    int4_quantize(src, rows, cols, group_size, out.codes, out.scales, out.zeros);
    return out;
}
/// INT4 dequantization: x' = (q - zero) * scale.
inline void int4_dequantize(span<const std::uint8_t> src, span<const float> scales, span<const std::uint8_t> zeros,
                            std::size_t rows, std::size_t cols, std::size_t group_size, span<float> dst) {
    const char *fn = "quant_int4_dequantize";
    if (rows != 0 && cols != 0 && detail::product(rows, cols) != std::numeric_limits<std::size_t>::max()) {
        detail::need(src.size(), int4_packed_size(rows, cols), "src", fn);
        detail::need(scales.size(), scale_count(rows, cols, group_size), "scales", fn);
        detail::need(zeros.size(), scale_count(rows, cols, group_size), "zeros", fn);
    }
    detail::check(quant_int4_dequantize(src.data(), scales.data(), zeros.data(), rows, cols, group_size, dst.data(),
                                        dst.size()),
                  fn);
}
inline std::vector<float> int4_dequantize(const int4_matrix &q, std::size_t rows, std::size_t cols, std::size_t group_size) {
    std::vector<float> dst(detail::product(rows, cols) != std::numeric_limits<std::size_t>::max() ? rows * cols : 0);
    int4_dequantize(q.codes, q.scales, q.zeros, rows, cols, group_size, dst);
    return dst;
}

/// Packs signed 4-bit values (-8..7) two a byte, the first in the low nibble.
inline void pack_int4(span<const std::int8_t> values, span<std::uint8_t> dst) {
    detail::check(quant_pack_int4(values.data(), values.size(), dst.data(), dst.size()), "quant_pack_int4");
}
inline std::vector<std::uint8_t> pack_int4(span<const std::int8_t> values) {
    std::vector<std::uint8_t> dst((values.size() + 1) / 2);
    pack_int4(values, dst);
    return dst;
}
/// Unpacks n signed 4-bit values (sign-extended) from ceil(n / 2) bytes.
inline void unpack_int4(span<const std::uint8_t> src, std::size_t n, span<std::int8_t> dst) {
    detail::need(src.size(), n / 2 + n % 2, "src", "quant_unpack_int4");
    detail::check(quant_unpack_int4(src.data(), n, dst.data(), dst.size()), "quant_unpack_int4");
}
inline std::vector<std::int8_t> unpack_int4(span<const std::uint8_t> src, std::size_t n) {
    detail::need(src.size(), n / 2 + n % 2, "src", "quant_unpack_int4");
    std::vector<std::int8_t> dst(n);
    unpack_int4(src, n, dst);
    return dst;
}

// ---- FP8 E4M3 with a scale per row or group ---------------------------------------------------------

/// FP8 E4M3 codes and one scale per group.
struct fp8_matrix {
    std::vector<std::uint8_t> codes;
    std::vector<float> scales;
};

/// FP8 E4M3 scaled quantization (scale = absmax / 448 per group) into caller buffers. One pass over
/// src; errors as int8_quantize (a NaN or infinity leaves dst and scales zero-filled).
inline void fp8_e4m3_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size,
                              span<std::uint8_t> dst, span<float> scales) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_fp8_e4m3_quantize");
    detail::check(quant_fp8_e4m3_quantize(src.data(), rows, cols, group_size, dst.data(), dst.size(), scales.data(),
                                          scales.size()),
                  "quant_fp8_e4m3_quantize");
}
inline fp8_matrix fp8_e4m3_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t group_size) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_fp8_e4m3_quantize");
    fp8_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scales.resize(scale_count(rows, cols, group_size));
    }
    fp8_e4m3_quantize(src, rows, cols, group_size, out.codes, out.scales);
    return out;
}
/// FP8 E4M3 dequantization: x' = f32(code) * scale.
inline void fp8_e4m3_dequantize(span<const std::uint8_t> src, span<const float> scales, std::size_t rows,
                                std::size_t cols, std::size_t group_size, span<float> dst) {
    const char *fn = "quant_fp8_e4m3_dequantize";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    if (rows != 0 && cols != 0) detail::need(scales.size(), scale_count(rows, cols, group_size), "scales", fn);
    detail::check(quant_fp8_e4m3_dequantize(src.data(), scales.data(), rows, cols, group_size, dst.data(), dst.size()),
                  fn);
}
inline std::vector<float> fp8_e4m3_dequantize(const fp8_matrix &q, std::size_t rows, std::size_t cols,
                                              std::size_t group_size) {
    std::vector<float> dst(detail::product(rows, cols) <= q.codes.size() ? rows * cols : 0);
    fp8_e4m3_dequantize(q.codes, q.scales, rows, cols, group_size, dst);
    return dst;
}


// ---- f16 / bf16 sources -----------------------------------------------------------------------------

/// Element type of a 16-bit source (QUANT_DTYPE_*): f16 or bf16 bits in std::uint16_t. The float
/// overloads are the f32 case.
enum class dtype : std::int32_t { f32 = QUANT_DTYPE_F32, f16 = QUANT_DTYPE_F16, bf16 = QUANT_DTYPE_BF16 };

namespace detail {
/// A 16-bit source must be f16 or bf16 (f32 data goes through the float overloads); an unknown value
/// is passed on, and the library rejects it.
inline void half_dtype(dtype dt, const char *function) {
    if (dt == dtype::f32) {
        fail(QUANT_ERR_INVALID_ARGUMENT, function, "dtype::f32 with a 16-bit source (use the float overload)");
    }
}
} // namespace detail

// The round-to-nearest kernels on f16 or bf16 bits (std::uint16_t), converted one row at a time; the
// outputs equal bit for bit those of the float overloads on the same values.

/// int8_quantize of a 16-bit source.
inline void int8_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                          std::size_t group_size, span<std::int8_t> dst, span<float> scales) {
    const char *fn = "quant_int8_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_int8_quantize_ex(static_cast<std::int32_t>(src_dtype), src.data(), rows, cols, group_size,
                                         dst.data(), dst.size(), scales.data(), scales.size()),
                  fn);
}
inline int8_matrix int8_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                                 std::size_t group_size) {
    int8_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scales.resize(scale_count(rows, cols, group_size));
    }
    int8_quantize(src_dtype, src, rows, cols, group_size, out.codes, out.scales);
    return out;
}
/// int4_quantize of a 16-bit source.
inline void int4_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                          std::size_t group_size, span<std::uint8_t> dst, span<float> scales, span<std::uint8_t> zeros) {
    const char *fn = "quant_int4_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    if (scales.size() != zeros.size()) detail::fail(QUANT_ERR_SHAPE_MISMATCH, fn, "scales and zeros differ in length");
    detail::check(quant_int4_quantize_ex(static_cast<std::int32_t>(src_dtype), src.data(), rows, cols, group_size,
                                         dst.data(), dst.size(), scales.data(), zeros.data(), scales.size()),
                  fn);
}
inline int4_matrix int4_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                                 std::size_t group_size) {
    int4_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(int4_packed_size(rows, cols));
        out.scales.resize(scale_count(rows, cols, group_size));
        out.zeros.resize(out.scales.size());
    }
    int4_quantize(src_dtype, src, rows, cols, group_size, out.codes, out.scales, out.zeros);
    return out;
}
/// fp8_e4m3_quantize of a 16-bit source.
inline void fp8_e4m3_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                              std::size_t group_size, span<std::uint8_t> dst, span<float> scales) {
    const char *fn = "quant_fp8_e4m3_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_fp8_e4m3_quantize_ex(static_cast<std::int32_t>(src_dtype), src.data(), rows, cols, group_size,
                                             dst.data(), dst.size(), scales.data(), scales.size()),
                  fn);
}
inline fp8_matrix fp8_e4m3_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                                    std::size_t group_size) {
    fp8_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scales.resize(scale_count(rows, cols, group_size));
    }
    fp8_e4m3_quantize(src_dtype, src, rows, cols, group_size, out.codes, out.scales);
    return out;
}

// ---- block-scaled FP8 E4M3 (DeepSeek-V3's weight + weight_scale_inv) --------------------------------

/// E4M3 codes and one scale_inv per block, row-major over the grid of blocks.
struct fp8_block_matrix {
    std::vector<std::uint8_t> codes;
    std::vector<float> scale_inv;
};

/// ceil(rows / block_rows) * ceil(cols / block_cols); 0 for an invalid geometry.
inline std::size_t fp8_block_scale_count(std::size_t rows, std::size_t cols, std::size_t block_rows,
                                         std::size_t block_cols) noexcept {
    return quant_fp8_block_scale_count(rows, cols, block_rows, block_cols);
}
/// Per block (edge blocks smaller): scale_inv = amax / 448, code = fp8_e4m3(x / scale_inv)
/// saturating, into caller buffers. One pass over src; a NaN or infinity leaves dst and scale_inv
/// zero-filled. Blocks of QUANT_FP8_BLOCK_DEEPSEEK x QUANT_FP8_BLOCK_DEEPSEEK are DeepSeek-V3's.
inline void fp8_block_quantize(span<const float> src, std::size_t rows, std::size_t cols, std::size_t block_rows,
                               std::size_t block_cols, span<std::uint8_t> dst, span<float> scale_inv) {
    const char *fn = "quant_fp8_block_quantize";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_fp8_block_quantize(src.data(), rows, cols, block_rows, block_cols, dst.data(), dst.size(),
                                           scale_inv.data(), scale_inv.size()),
                  fn);
}
inline fp8_block_matrix fp8_block_quantize(span<const float> src, std::size_t rows, std::size_t cols,
                                           std::size_t block_rows, std::size_t block_cols) {
    fp8_block_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scale_inv.resize(fp8_block_scale_count(rows, cols, block_rows, block_cols));
    }
    fp8_block_quantize(src, rows, cols, block_rows, block_cols, out.codes, out.scale_inv);
    return out;
}
/// fp8_block_quantize of f16 or bf16 bits (the outputs equal those of the same values as float).
inline void fp8_block_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols,
                               std::size_t block_rows, std::size_t block_cols, span<std::uint8_t> dst,
                               span<float> scale_inv) {
    const char *fn = "quant_fp8_block_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_fp8_block_quantize_ex(static_cast<std::int32_t>(src_dtype), src.data(), rows, cols, block_rows,
                                              block_cols, dst.data(), dst.size(), scale_inv.data(), scale_inv.size()),
                  fn);
}
inline fp8_block_matrix fp8_block_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows,
                                           std::size_t cols, std::size_t block_rows, std::size_t block_cols) {
    fp8_block_matrix out;
    if (detail::fits(rows, cols)) {
        out.codes.resize(rows * cols);
        out.scale_inv.resize(fp8_block_scale_count(rows, cols, block_rows, block_cols));
    }
    fp8_block_quantize(src_dtype, src, rows, cols, block_rows, block_cols, out.codes, out.scale_inv);
    return out;
}
/// x' = f32(code) * scale_inv of its block (DeepSeek-V3's weight_dequant).
inline void fp8_block_dequantize(span<const std::uint8_t> src, span<const float> scale_inv, std::size_t rows,
                                 std::size_t cols, std::size_t block_rows, std::size_t block_cols, span<float> dst) {
    const char *fn = "quant_fp8_block_dequantize";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    std::size_t nb = fp8_block_scale_count(rows, cols, block_rows, block_cols);
    if (nb != 0) detail::need(scale_inv.size(), nb, "scale_inv", fn);
    detail::check(quant_fp8_block_dequantize(src.data(), scale_inv.data(), rows, cols, block_rows, block_cols,
                                             dst.data(), dst.size()),
                  fn);
}
inline std::vector<float> fp8_block_dequantize(const fp8_block_matrix &q, std::size_t rows, std::size_t cols,
                                               std::size_t block_rows, std::size_t block_cols) {
    std::vector<float> dst(detail::product(rows, cols) <= q.codes.size() ? rows * cols : 0);
    fp8_block_dequantize(q.codes, q.scale_inv, rows, cols, block_rows, block_cols, dst);
    return dst;
}

// ---- bitsandbytes NF4 / FP4 (quantize_4bit without double quantization) ----------------------------

/// bitsandbytes' 4-bit code books, numbered as bitsandbytes numbers them.
enum class bnb4_type : std::int32_t { fp4 = QUANT_BNB4_FP4, nf4 = QUANT_BNB4_NF4 };

/// Packed codes (first value in the high nibble) and one absmax per block.
struct bnb4_tensor {
    std::vector<std::uint8_t> codes;
    std::vector<float> absmax;
};

/// ceil(n / 2) bytes of packed codes; 0 for n 0.
inline std::size_t bnb4_packed_size(std::size_t n) noexcept { return quant_bnb4_packed_size(n); }
/// ceil(n / blocksize); 0 for n 0 or a block size bitsandbytes does not accept.
inline std::size_t bnb4_absmax_count(std::size_t n, std::size_t blocksize) noexcept {
    return quant_bnb4_absmax_count(n, blocksize);
}
/// Byte for byte bitsandbytes' quantize_4bit of src (flattened) into caller buffers. A NaN or
/// infinity leaves the outputs zero-filled.
inline void bnb4_quantize(bnb4_type type, span<const float> src, std::size_t blocksize, span<std::uint8_t> dst,
                          span<float> absmax) {
    detail::check(quant_bnb4_quantize(static_cast<std::int32_t>(type), src.data(), src.size(), blocksize, dst.data(),
                                      dst.size(), absmax.data(), absmax.size()),
                  "quant_bnb4_quantize");
}
inline bnb4_tensor bnb4_quantize(bnb4_type type, span<const float> src,
                                 std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE) {
    bnb4_tensor out;
    out.codes.resize(bnb4_packed_size(src.size()));
    out.absmax.resize(bnb4_absmax_count(src.size(), blocksize));
    bnb4_quantize(type, src, blocksize, out.codes, out.absmax);
    return out;
}
/// bnb4_quantize of f16 or bf16 bits.
inline void bnb4_quantize(bnb4_type type, dtype src_dtype, span<const std::uint16_t> src, std::size_t blocksize,
                          span<std::uint8_t> dst, span<float> absmax) {
    const char *fn = "quant_bnb4_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::check(quant_bnb4_quantize_ex(static_cast<std::int32_t>(type), static_cast<std::int32_t>(src_dtype),
                                         src.data(), src.size(), blocksize, dst.data(), dst.size(), absmax.data(),
                                         absmax.size()),
                  fn);
}
inline bnb4_tensor bnb4_quantize(bnb4_type type, dtype src_dtype, span<const std::uint16_t> src,
                                 std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE) {
    bnb4_tensor out;
    out.codes.resize(bnb4_packed_size(src.size()));
    out.absmax.resize(bnb4_absmax_count(src.size(), blocksize));
    bnb4_quantize(type, src_dtype, src, blocksize, out.codes, out.absmax);
    return out;
}
/// x' = code_book[code] * absmax of its block, n values (dequantize_4bit to float32).
inline void bnb4_dequantize(bnb4_type type, span<const std::uint8_t> src, span<const float> absmax, std::size_t n,
                            std::size_t blocksize, span<float> dst) {
    const char *fn = "quant_bnb4_dequantize";
    detail::need(src.size(), n / 2 + n % 2, "src", fn);
    std::size_t na = bnb4_absmax_count(n, blocksize);
    if (na != 0) detail::need(absmax.size(), na, "absmax", fn);
    detail::check(quant_bnb4_dequantize(static_cast<std::int32_t>(type), src.data(), absmax.data(), n, blocksize,
                                        dst.data(), dst.size()),
                  fn);
}
inline std::vector<float> bnb4_dequantize(bnb4_type type, const bnb4_tensor &q, std::size_t n,
                                          std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE) {
    std::vector<float> dst(n);
    bnb4_dequantize(type, q.codes, q.absmax, n, blocksize, dst);
    return dst;
}

// ---- bitsandbytes double quantization (quantize_4bit with compress_statistics=True) ----------------
// See quant_bnb4_quantize_nested in quant.h: the block absmax values minus an offset, coded to 8 bits
// on bitsandbytes' signed dynamic map in blocks of QUANT_BNB4_NESTED_BLOCKSIZE (256).

/// Packed codes and double-quantized statistics: one 8-bit code per 4-bit block (bitsandbytes' uint8
/// absmax), one float per 256 of them (state2's absmax), and the offset.
struct bnb4_nested_tensor {
    std::vector<std::uint8_t> codes;
    std::vector<std::uint8_t> qabsmax;
    std::vector<float> absmax2;
    float offset = 0.0f;
};

/// ceil(ceil(n / blocksize) / 256); 0 for n 0 or a block size bitsandbytes does not accept.
inline std::size_t bnb4_nested_count(std::size_t n, std::size_t blocksize) noexcept {
    return quant_bnb4_nested_count(n, blocksize);
}
/// The library's offset rule: the mean of absmax as its double sum in index order over the count,
/// rounded once to float.
inline float bnb4_absmax_mean(span<const float> absmax) {
    float mean = 0.0f;
    detail::check(quant_bnb4_absmax_mean(absmax.data(), absmax.size(), &mean), "quant_bnb4_absmax_mean");
    return mean;
}
/// Byte for byte bitsandbytes' quantize_4bit(compress_statistics=True) of src given the offset, into
/// caller buffers; returns the offset used. No offset: the library's mean rule (bitsandbytes' own is
/// torch's float mean, whose last bits depend on the machine). A NaN or infinity leaves the outputs
/// zero-filled.
inline float bnb4_quantize_nested(bnb4_type type, span<const float> src, std::size_t blocksize,
                                  std::optional<float> offset, span<std::uint8_t> dst, span<std::uint8_t> qabsmax,
                                  span<float> absmax2) {
    float used = 0.0f;
    detail::check(quant_bnb4_quantize_nested(static_cast<std::int32_t>(type), QUANT_DTYPE_F32, src.data(), src.size(),
                                             blocksize, offset ? &*offset : nullptr, dst.data(), dst.size(),
                                             qabsmax.data(), qabsmax.size(), absmax2.data(), absmax2.size(), &used),
                  "quant_bnb4_quantize_nested");
    return used;
}
inline bnb4_nested_tensor bnb4_quantize_nested(bnb4_type type, span<const float> src,
                                               std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE,
                                               std::optional<float> offset = std::nullopt) {
    bnb4_nested_tensor out;
    out.codes.resize(bnb4_packed_size(src.size()));
    out.qabsmax.resize(bnb4_absmax_count(src.size(), blocksize));
    out.absmax2.resize(bnb4_nested_count(src.size(), blocksize));
    out.offset = bnb4_quantize_nested(type, src, blocksize, offset, out.codes, out.qabsmax, out.absmax2);
    return out;
}
/// bnb4_quantize_nested of f16 or bf16 bits.
inline float bnb4_quantize_nested(bnb4_type type, dtype src_dtype, span<const std::uint16_t> src,
                                  std::size_t blocksize, std::optional<float> offset, span<std::uint8_t> dst,
                                  span<std::uint8_t> qabsmax, span<float> absmax2) {
    const char *fn = "quant_bnb4_quantize_nested";
    detail::half_dtype(src_dtype, fn);
    float used = 0.0f;
    detail::check(quant_bnb4_quantize_nested(static_cast<std::int32_t>(type), static_cast<std::int32_t>(src_dtype),
                                             src.data(), src.size(), blocksize, offset ? &*offset : nullptr,
                                             dst.data(), dst.size(), qabsmax.data(), qabsmax.size(), absmax2.data(),
                                             absmax2.size(), &used),
                  fn);
    return used;
}
inline bnb4_nested_tensor bnb4_quantize_nested(bnb4_type type, dtype src_dtype, span<const std::uint16_t> src,
                                               std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE,
                                               std::optional<float> offset = std::nullopt) {
    bnb4_nested_tensor out;
    out.codes.resize(bnb4_packed_size(src.size()));
    out.qabsmax.resize(bnb4_absmax_count(src.size(), blocksize));
    out.absmax2.resize(bnb4_nested_count(src.size(), blocksize));
    out.offset = bnb4_quantize_nested(type, src_dtype, src, blocksize, offset, out.codes, out.qabsmax, out.absmax2);
    return out;
}
/// The absmax values the statistics decode to (dequantize_blockwise + offset): qabsmax.size() floats,
/// which bnb4_dequantize takes.
inline void bnb4_nested_absmax(span<const std::uint8_t> qabsmax, span<const float> absmax2, float offset,
                               span<float> dst) {
    const char *fn = "quant_bnb4_nested_absmax";
    const std::size_t bs = QUANT_BNB4_NESTED_BLOCKSIZE;
    detail::need(absmax2.size(), qabsmax.size() / bs + (qabsmax.size() % bs != 0), "absmax2", fn);
    detail::check(quant_bnb4_nested_absmax(qabsmax.data(), absmax2.data(), offset, qabsmax.size(), dst.data(),
                                           dst.size()),
                  fn);
}
inline std::vector<float> bnb4_nested_absmax(const bnb4_nested_tensor &q) {
    std::vector<float> dst(q.qabsmax.size());
    bnb4_nested_absmax(q.qabsmax, q.absmax2, q.offset, dst);
    return dst;
}
/// n values of a tensor with double-quantized statistics (dequantize_4bit of a nested state to float32).
inline void bnb4_dequantize_nested(bnb4_type type, span<const std::uint8_t> src, span<const std::uint8_t> qabsmax,
                                   span<const float> absmax2, float offset, std::size_t n, std::size_t blocksize,
                                   span<float> dst) {
    const char *fn = "quant_bnb4_dequantize_nested";
    detail::need(src.size(), n / 2 + n % 2, "src", fn);
    std::size_t na = bnb4_absmax_count(n, blocksize);
    if (na != 0) {
        detail::need(qabsmax.size(), na, "qabsmax", fn);
        detail::need(absmax2.size(), bnb4_nested_count(n, blocksize), "absmax2", fn);
    }
    detail::check(quant_bnb4_dequantize_nested(static_cast<std::int32_t>(type), src.data(), qabsmax.data(),
                                               absmax2.data(), offset, n, blocksize, dst.data(), dst.size()),
                  fn);
}
inline std::vector<float> bnb4_dequantize_nested(bnb4_type type, const bnb4_nested_tensor &q, std::size_t n,
                                                 std::size_t blocksize = QUANT_BNB4_DEFAULT_BLOCKSIZE) {
    std::vector<float> dst(n);
    bnb4_dequantize_nested(type, q.codes, q.qabsmax, q.absmax2, q.offset, n, blocksize, dst);
    return dst;
}

// ---- OCP MX and NVFP4 ---------------------------------------------------------------------------------
// See quant_mx_quantize and quant_nvfp4_quantize in quant.h for the rules and the byte layouts.

/// The MX element types (QUANT_MX_*): 32 values of a row share one E8M0 scale byte.
enum class mx_elem : std::int32_t {
    fp8_e4m3 = QUANT_MX_FP8_E4M3,
    fp8_e5m2 = QUANT_MX_FP8_E5M2,
    fp6_e2m3 = QUANT_MX_FP6_E2M3,
    fp6_e3m2 = QUANT_MX_FP6_E3M2,
    fp4_e2m1 = QUANT_MX_FP4_E2M1,
    int8 = QUANT_MX_INT8
};

/// Packed MX codes and their E8M0 scale bytes.
struct mx_matrix {
    std::vector<std::uint8_t> codes, scales;
};

/// Bytes of the packed codes of a rows x cols MX matrix (0 for an unknown type or shape).
inline std::size_t mx_packed_size(mx_elem elem, std::size_t rows, std::size_t cols) noexcept {
    return quant_mx_packed_size(static_cast<std::int32_t>(elem), rows, cols);
}
/// E8M0 scale bytes of a rows x cols MX matrix: rows * ceil(cols / 32) (0 for an invalid shape).
inline std::size_t mx_scale_count(std::size_t rows, std::size_t cols) noexcept { return quant_mx_scale_count(rows, cols); }

/// MX quantization into caller buffers (the OCP floor scale rule; elements rounded to nearest even,
/// saturating). A NaN or infinity throws QUANT_ERR_NON_FINITE and leaves dst and scales zero-filled.
inline void mx_quantize(mx_elem elem, span<const float> src, std::size_t rows, std::size_t cols,
                        span<std::uint8_t> dst, span<std::uint8_t> scales) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_mx_quantize");
    detail::check(quant_mx_quantize(static_cast<std::int32_t>(elem), src.data(), rows, cols, dst.data(), dst.size(),
                                    scales.data(), scales.size()),
                  "quant_mx_quantize");
}
inline mx_matrix mx_quantize(mx_elem elem, span<const float> src, std::size_t rows, std::size_t cols) {
    mx_matrix out;
    out.codes.resize(mx_packed_size(elem, rows, cols));
    out.scales.resize(mx_scale_count(rows, cols));
    mx_quantize(elem, src, rows, cols, out.codes, out.scales);
    return out;
}
/// mx_quantize of a 16-bit source (dtype::f16 or dtype::bf16); the bytes equal those of its values.
inline void mx_quantize(mx_elem elem, dtype src_dtype, span<const std::uint16_t> src, std::size_t rows,
                        std::size_t cols, span<std::uint8_t> dst, span<std::uint8_t> scales) {
    const char *fn = "quant_mx_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_mx_quantize_ex(static_cast<std::int32_t>(elem), static_cast<std::int32_t>(src_dtype), src.data(),
                                       rows, cols, dst.data(), dst.size(), scales.data(), scales.size()),
                  fn);
}
inline mx_matrix mx_quantize(mx_elem elem, dtype src_dtype, span<const std::uint16_t> src, std::size_t rows,
                             std::size_t cols) {
    mx_matrix out;
    out.codes.resize(mx_packed_size(elem, rows, cols));
    out.scales.resize(mx_scale_count(rows, cols));
    mx_quantize(elem, src_dtype, src, rows, cols, out.codes, out.scales);
    return out;
}
/// MX dequantization: x' = value(code) * 2^(scale - 127).
inline void mx_dequantize(mx_elem elem, span<const std::uint8_t> src, span<const std::uint8_t> scales,
                          std::size_t rows, std::size_t cols, span<float> dst) {
    detail::check(quant_mx_dequantize(static_cast<std::int32_t>(elem), src.data(), src.size(), scales.data(),
                                      scales.size(), rows, cols, dst.data(), dst.size()),
                  "quant_mx_dequantize");
}
inline std::vector<float> mx_dequantize(mx_elem elem, const mx_matrix &q, std::size_t rows, std::size_t cols) {
    std::vector<float> dst(detail::fits(rows, cols) ? rows * cols : 0);
    mx_dequantize(elem, q.codes, q.scales, rows, cols, dst);
    return dst;
}

/// NVFP4: packed E2M1 codes, E4M3 block scales (one per 16 values) and the per-tensor global scale
/// (compressed-tensors' weight_packed, weight_scale, weight_global_scale).
struct nvfp4_matrix {
    std::vector<std::uint8_t> codes, scales;
    float global_scale = 0;
};
inline std::size_t nvfp4_packed_size(std::size_t rows, std::size_t cols) noexcept { return quant_nvfp4_packed_size(rows, cols); }
inline std::size_t nvfp4_scale_count(std::size_t rows, std::size_t cols) noexcept { return quant_nvfp4_scale_count(rows, cols); }

/// NVFP4 quantization as compressed-tensors computes it, into caller buffers; returns the global scale.
inline float nvfp4_quantize(span<const float> src, std::size_t rows, std::size_t cols, span<std::uint8_t> dst,
                            span<std::uint8_t> scales) {
    detail::need(src.size(), detail::product(rows, cols), "src", "quant_nvfp4_quantize");
    float g = 0;
    detail::check(quant_nvfp4_quantize(src.data(), rows, cols, dst.data(), dst.size(), scales.data(), scales.size(), &g),
                  "quant_nvfp4_quantize");
    return g;
}
inline nvfp4_matrix nvfp4_quantize(span<const float> src, std::size_t rows, std::size_t cols) {
    nvfp4_matrix out;
    out.codes.resize(nvfp4_packed_size(rows, cols));
    out.scales.resize(nvfp4_scale_count(rows, cols));
    out.global_scale = nvfp4_quantize(src, rows, cols, out.codes, out.scales);
    return out;
}
/// nvfp4_quantize of a 16-bit source.
inline nvfp4_matrix nvfp4_quantize(dtype src_dtype, span<const std::uint16_t> src, std::size_t rows, std::size_t cols) {
    const char *fn = "quant_nvfp4_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    nvfp4_matrix out;
    out.codes.resize(nvfp4_packed_size(rows, cols));
    out.scales.resize(nvfp4_scale_count(rows, cols));
    detail::check(quant_nvfp4_quantize_ex(static_cast<std::int32_t>(src_dtype), src.data(), rows, cols, out.codes.data(),
                                          out.codes.size(), out.scales.data(), out.scales.size(), &out.global_scale),
                  fn);
    return out;
}
/// The global scale nvfp4_quantize computes for a tensor whose largest magnitude is amax; for fused
/// layers (q/k/v, gate/up), the scale of the group's largest amax, shared by its members.
inline float nvfp4_global_scale(float amax) {
    float g = quant_nvfp4_global_scale(amax);
    if (g == 0) detail::check(QUANT_ERR_INVALID_ARGUMENT, "quant_nvfp4_global_scale");
    return g;
}
/// NVFP4 quantization under a given global scale (finite, > 0), into caller buffers.
inline void nvfp4_quantize_with_global(span<const float> src, std::size_t rows, std::size_t cols, float global_scale,
                                       span<std::uint8_t> dst, span<std::uint8_t> scales) {
    const char *fn = "quant_nvfp4_quantize_with_global";
    detail::need(src.size(), detail::product(rows, cols), "src", fn);
    detail::check(quant_nvfp4_quantize_with_global(QUANT_DTYPE_F32, src.data(), rows, cols, global_scale, dst.data(),
                                                   dst.size(), scales.data(), scales.size()),
                  fn);
}
inline nvfp4_matrix nvfp4_quantize_with_global(span<const float> src, std::size_t rows, std::size_t cols,
                                               float global_scale) {
    nvfp4_matrix out;
    out.codes.resize(nvfp4_packed_size(rows, cols));
    out.scales.resize(nvfp4_scale_count(rows, cols));
    nvfp4_quantize_with_global(src, rows, cols, global_scale, out.codes, out.scales);
    out.global_scale = global_scale;
    return out;
}
/// NVFP4 dequantization: x' = e2m1(code) * (e4m3(scale) / global_scale).
inline void nvfp4_dequantize(span<const std::uint8_t> src, span<const std::uint8_t> scales, float global_scale,
                             std::size_t rows, std::size_t cols, span<float> dst) {
    detail::check(quant_nvfp4_dequantize(src.data(), src.size(), scales.data(), scales.size(), global_scale, rows, cols,
                                         dst.data(), dst.size()),
                  "quant_nvfp4_dequantize");
}
inline std::vector<float> nvfp4_dequantize(const nvfp4_matrix &q, std::size_t rows, std::size_t cols) {
    std::vector<float> dst(detail::fits(rows, cols) ? rows * cols : 0);
    nvfp4_dequantize(q.codes, q.scales, q.global_scale, rows, cols, dst);
    return dst;
}

// ---- GGUF blocks (GGML quant types) -----------------------------------------------------------------

/// The GGML quant types (GGML's own type ids, QUANT_GGML_TYPE_*).
namespace ggml {
constexpr std::int32_t q4_0 = QUANT_GGML_TYPE_Q4_0;
constexpr std::int32_t q4_1 = QUANT_GGML_TYPE_Q4_1;
constexpr std::int32_t q5_0 = QUANT_GGML_TYPE_Q5_0;
constexpr std::int32_t q5_1 = QUANT_GGML_TYPE_Q5_1;
constexpr std::int32_t q8_0 = QUANT_GGML_TYPE_Q8_0;
constexpr std::int32_t q2_k = QUANT_GGML_TYPE_Q2_K;
constexpr std::int32_t q3_k = QUANT_GGML_TYPE_Q3_K;
constexpr std::int32_t q4_k = QUANT_GGML_TYPE_Q4_K;
constexpr std::int32_t q5_k = QUANT_GGML_TYPE_Q5_K;
constexpr std::int32_t q6_k = QUANT_GGML_TYPE_Q6_K;
constexpr std::int32_t iq4_nl = QUANT_GGML_TYPE_IQ4_NL;
constexpr std::int32_t mxfp4 = QUANT_GGML_TYPE_MXFP4;
constexpr std::int32_t iq4_xs = QUANT_GGML_TYPE_IQ4_XS;
constexpr std::int32_t nvfp4 = QUANT_GGML_TYPE_NVFP4;
constexpr std::int32_t tq1_0 = QUANT_GGML_TYPE_TQ1_0;
constexpr std::int32_t tq2_0 = QUANT_GGML_TYPE_TQ2_0;
} // namespace ggml


/// Values per block of a GGML type (32, 64 for NVFP4, or 256); throws QUANT_ERR_INVALID_ARGUMENT for an unknown type.
inline std::size_t ggml_block_size(std::int32_t type) {
    std::size_t n = quant_ggml_block_size(type);
    if (n == 0) detail::check(QUANT_ERR_INVALID_ARGUMENT, "quant_ggml_block_size");
    return n;
}
/// Bytes per block of a GGML type (18, 20, 22, 24, 34, 84, 110, 144, 176, 210, 18, 17, 136, 36); throws for an unknown type.
inline std::size_t ggml_type_size(std::int32_t type) {
    std::size_t n = quant_ggml_type_size(type);
    if (n == 0) detail::check(QUANT_ERR_INVALID_ARGUMENT, "quant_ggml_type_size");
    return n;
}
/// Bytes of one row of n_per_row values (0 for n_per_row 0); throws QUANT_ERR_INVALID_ARGUMENT for an
/// unknown type or a row length that is not a multiple of the block size.
inline std::size_t ggml_row_size(std::int32_t type, std::size_t n_per_row) {
    std::size_t n = quant_ggml_row_size(type, n_per_row);
    if (n == 0 && n_per_row != 0) detail::check(QUANT_ERR_INVALID_ARGUMENT, "quant_ggml_row_size");
    return n;
}
/// GGML's name of a type ("q4_0" ... "q6_K", "iq4_nl", "mxfp4", "iq4_xs", "nvfp4"); throws QUANT_ERR_INVALID_ARGUMENT for an unknown type.
inline std::string ggml_type_name(std::int32_t type) {
    const char *name = quant_ggml_type_name(type);
    if (name == nullptr) detail::check(QUANT_ERR_INVALID_ARGUMENT, "quant_ggml_type_name");
    return std::string(name);
}
/// Quantizes nrows x n_per_row floats to GGML blocks, byte for byte as ggml's reference quantizer;
/// dst holds at least nrows * ggml_row_size(type, n_per_row) bytes (only that prefix is written).
inline void ggml_quantize(std::int32_t type, span<const float> src, std::size_t nrows, std::size_t n_per_row,
                          span<std::uint8_t> dst) {
    detail::need(src.size(), detail::product(nrows, n_per_row), "src", "quant_ggml_quantize");
    detail::check(quant_ggml_quantize(type, src.data(), nrows, n_per_row, dst.data(), dst.size()), "quant_ggml_quantize");
}
namespace detail {
inline std::size_t ggml_bytes(std::int32_t type, std::size_t nrows, std::size_t n_per_row) {
    std::size_t row = quant_ggml_row_size(type, n_per_row);
    return row != 0 && fits(nrows, row) ? nrows * row : 0; // else the C call reports the bad argument
}
} // namespace detail
inline std::vector<std::uint8_t> ggml_quantize(std::int32_t type, span<const float> src, std::size_t nrows,
                                               std::size_t n_per_row) {
    std::vector<std::uint8_t> dst(detail::ggml_bytes(type, nrows, n_per_row));
    ggml_quantize(type, src, nrows, n_per_row, dst);
    return dst;
}
/// ggml_quantize with an importance matrix (one weight per column, the imatrix of llama-quantize):
/// byte for byte as ggml_quantize_chunk with it. An empty quant_weights means none (the bytes of
/// ggml_quantize); otherwise it holds exactly n_per_row finite weights >= 0 (else
/// QUANT_ERR_SHAPE_MISMATCH, QUANT_ERR_NON_FINITE or QUANT_ERR_INVALID_ARGUMENT).
inline void ggml_quantize_weighted(std::int32_t type, span<const float> src, std::size_t nrows, std::size_t n_per_row,
                                   span<const float> quant_weights, span<std::uint8_t> dst) {
    const char *fn = "quant_ggml_quantize_weighted";
    detail::need(src.size(), detail::product(nrows, n_per_row), "src", fn);
    if (!quant_weights.empty() && quant_weights.size() != n_per_row) {
        detail::fail(QUANT_ERR_SHAPE_MISMATCH, fn,
                     "quant_weights holds " + std::to_string(quant_weights.size()) + " weights, n_per_row is " +
                         std::to_string(n_per_row));
    }
    detail::check(quant_ggml_quantize_weighted(type, src.data(), nrows, n_per_row,
                                               quant_weights.empty() ? nullptr : quant_weights.data(), dst.data(),
                                               dst.size()),
                  fn);
}
inline std::vector<std::uint8_t> ggml_quantize_weighted(std::int32_t type, span<const float> src, std::size_t nrows,
                                                        std::size_t n_per_row, span<const float> quant_weights) {
    std::vector<std::uint8_t> dst(detail::ggml_bytes(type, nrows, n_per_row));
    ggml_quantize_weighted(type, src, nrows, n_per_row, quant_weights, dst);
    return dst;
}
/// ggml_quantize of f16 or bf16 bits (as llama.cpp quantizes 16-bit models); the bytes equal those
/// of the float overload on the same values.
inline void ggml_quantize(std::int32_t type, dtype src_dtype, span<const std::uint16_t> src, std::size_t nrows,
                          std::size_t n_per_row, span<std::uint8_t> dst) {
    const char *fn = "quant_ggml_quantize_ex";
    detail::half_dtype(src_dtype, fn);
    detail::need(src.size(), detail::product(nrows, n_per_row), "src", fn);
    detail::check(quant_ggml_quantize_ex(type, static_cast<std::int32_t>(src_dtype), src.data(), nrows, n_per_row,
                                         dst.data(), dst.size()),
                  fn);
}
inline std::vector<std::uint8_t> ggml_quantize(std::int32_t type, dtype src_dtype, span<const std::uint16_t> src,
                                               std::size_t nrows, std::size_t n_per_row) {
    std::vector<std::uint8_t> dst(detail::ggml_bytes(type, nrows, n_per_row));
    ggml_quantize(type, src_dtype, src, nrows, n_per_row, dst);
    return dst;
}
/// Dequantizes the first dst.size() values (a positive multiple of the block size) of GGML blocks.
inline void ggml_dequantize(std::int32_t type, span<const std::uint8_t> src, span<float> dst) {
    detail::check(quant_ggml_dequantize(type, src.data(), src.size(), dst.data(), dst.size()), "quant_ggml_dequantize");
}
inline std::vector<float> ggml_dequantize(std::int32_t type, span<const std::uint8_t> src, std::size_t n) {
    std::vector<float> dst(n);
    ggml_dequantize(type, src, dst);
    return dst;
}

// ---- calibration and options ------------------------------------------------------------------------

/// SmoothQuant scales s_j = a_j^alpha / w_j^(1 - alpha); all three spans have the same length.
inline void smooth_scales(span<const float> weight_absmax, span<const float> act_absmax, double alpha, span<float> out) {
    const char *fn = "quant_smooth_scales";
    if (weight_absmax.size() != act_absmax.size()) {
        detail::fail(QUANT_ERR_SHAPE_MISMATCH, fn, "weight_absmax and act_absmax differ in length");
    }
    detail::need(out.size(), weight_absmax.size(), "out", fn);
    detail::check(quant_smooth_scales(weight_absmax.data(), act_absmax.data(), weight_absmax.size(), alpha, out.data()),
                  fn);
}
inline std::vector<float> smooth_scales(span<const float> weight_absmax, span<const float> act_absmax, double alpha) {
    std::vector<float> out(weight_absmax.size());
    smooth_scales(weight_absmax, act_absmax, alpha, out);
    return out;
}
/// Owner of a quant_options: the optional knobs of the methods; every setter validates its value.
class options {
  public:
    options() { detail::check(quant_options_new(&handle_), "quant_options_new"); }
    options(options &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    options &operator=(options &&other) noexcept {
        if (this != &other) {
            quant_options_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    options(const options &) = delete;
    options &operator=(const options &) = delete;
    ~options() { quant_options_free(handle_); }

    /// GPTQ: process columns by decreasing Hessian diagonal (the result keeps g_idx).
    options &act_order(bool on) { detail::check(quant_options_set_act_order(handle_, on), "quant_options_set_act_order"); return *this; }
    /// GPTQ: damping as a fraction of the mean Hessian diagonal (default 0.01).
    options &damp_percent(double v) { detail::check(quant_options_set_damp_percent(handle_, v), "quant_options_set_damp_percent"); return *this; }
    /// GPTQ: columns per lazy block update (default 128).
    options &block_size(std::size_t v) { detail::check(quant_options_set_block_size(handle_, v), "quant_options_set_block_size"); return *this; }
    /// GPTQ/AWQ: symmetric codes instead of zero points.
    options &symmetric(bool on) { detail::check(quant_options_set_symmetric(handle_, on), "quant_options_set_symmetric"); return *this; }
    /// GPTQ with act-order: every group's scale from the original weights.
    options &static_groups(bool on) { detail::check(quant_options_set_static_groups(handle_, on), "quant_options_set_static_groups"); return *this; }
    /// GPTQ: search a shrink grid for each group's scale.
    options &mse_search(bool on) { detail::check(quant_options_set_mse_search(handle_, on), "quant_options_set_mse_search"); return *this; }
    /// Tokens a calibration keeps for AWQ's searches (default 512).
    options &sample_tokens(std::size_t v) { detail::check(quant_options_set_sample_tokens(handle_, v), "quant_options_set_sample_tokens"); return *this; }
    /// Worker threads, 0 = all cores.
    /// Worker threads of GPTQ, AWQ and the Hessian: 0 = all cores, at most QUANT_MAX_THREADS, default 1.
    options &threads(std::size_t v) { detail::check(quant_options_set_threads(handle_, v), "quant_options_set_threads"); return *this; }

    quant_options *get() const noexcept { return handle_; }
    quant_options *release() noexcept { return std::exchange(handle_, nullptr); }

  private:
    quant_options *handle_ = nullptr;
};
/// Owner of a quant_calib: activation statistics of one layer input of width cols.
class calib {
  public:
    /// Accumulates everything: the Hessian (GPTQ), max|x| and mean|x|, and a sample of 512 tokens.
    explicit calib(std::size_t cols) : cols_(cols) { detail::check(quant_calib_new(cols, &handle_), "quant_calib_new"); }
    /// flags: 0 (no Hessian: O(cols) memory, enough for AWQ and SmoothQuant) or calib::hessian.
    /// opts: sample_tokens and threads are read here (nullptr = defaults).
    calib(std::size_t cols, std::uint32_t flags, const options *opts = nullptr) : cols_(cols) {
        detail::check(quant_calib_new_ex(cols, flags, opts ? opts->get() : nullptr, &handle_), "quant_calib_new_ex");
    }
    calib(std::size_t cols, std::uint32_t flags, const options &opts) : calib(cols, flags, &opts) {}
    /// Flag of calib(cols, flags): accumulate the GPTQ Hessian.
    static constexpr std::uint32_t hessian = QUANT_CALIB_HESSIAN;
    calib(calib &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)), cols_(other.cols_) {}
    calib &operator=(calib &&other) noexcept {
        if (this != &other) {
            quant_calib_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            cols_ = other.cols_;
        }
        return *this;
    }
    calib(const calib &) = delete;
    calib &operator=(const calib &) = delete;
    ~calib() { quant_calib_free(handle_); }

    /// Adds x.size() / cols() tokens (row-major n_tokens x cols); x.size() must be a multiple of cols().
    calib &add(span<const float> x) {
        if (cols_ == 0 || x.size() % cols_ != 0) {
            detail::fail(QUANT_ERR_SHAPE_MISMATCH, "quant_calib_add",
                         "x holds " + std::to_string(x.size()) + " floats, not a multiple of cols = " + std::to_string(cols_));
        }
        detail::check(quant_calib_add(handle_, x.data(), x.size() / cols_, cols_), "quant_calib_add");
        return *this;
    }
    /// Adds n_tokens x cols activations (cols must equal the calibration's width, else SHAPE_MISMATCH).
    calib &add(span<const float> x, std::size_t n_tokens, std::size_t cols) {
        detail::need(x.size(), detail::product(n_tokens, cols), "x", "quant_calib_add");
        detail::check(quant_calib_add(handle_, x.data(), n_tokens, cols), "quant_calib_add");
        return *this;
    }
    /// Replaces the Hessian by h (row-major cols x cols doubles, H = (2/n) sum x x^T over n_tokens),
    /// accumulated elsewhere; only the lower triangle is read.
    calib &set_hessian(span<const double> h, std::size_t cols, std::uint64_t n_tokens) {
        detail::check(quant_calib_set_hessian(handle_, h.data(), h.size(), cols, n_tokens), "quant_calib_set_hessian");
        return *this;
    }
    /// Tokens added so far.
    std::uint64_t tokens() const noexcept { return quant_calib_tokens(handle_); }
    /// How many calibration tokens `kind` should be fitted on for a layer with `cols` input columns
    /// (quant_calib_recommended_tokens): 0 for round-to-nearest, 16 * cols for GPTQ, 512 for AWQ and
    /// SmoothQuant. Compare it with tokens().
    static std::uint64_t recommended_tokens(quant_method_kind kind, std::size_t cols) {
        std::uint64_t t = 0;
        detail::check(quant_calib_recommended_tokens(kind, cols, &t), "quant_calib_recommended_tokens");
        return t;
    }
    /// The input width.
    std::size_t cols() const noexcept { return cols_; }

    quant_calib *get() const noexcept { return handle_; }
    quant_calib *release() noexcept { return std::exchange(handle_, nullptr); }

  private:
    quant_calib *handle_ = nullptr;
    std::size_t cols_ = 0;
};


// ---- W8A8 runtime (SmoothQuant layers) -------------------------------------------------------------

/// Per-token INT8 activations: n_tokens x cols codes and one scale per token.
struct int8_activations {
    std::vector<std::int8_t> codes;
    std::vector<float> token_scales;
};
/// Per-token INT8 quantization of x / input_scales (input_scales empty: no division), as a W8A8
/// engine runs a SmoothQuant layer.
inline void quantize_activations(span<const float> x, std::size_t n_tokens, std::size_t cols,
                                 span<const float> input_scales, span<std::int8_t> dst, span<float> token_scales) {
    const char *fn = "quant_quantize_activations";
    detail::need(x.size(), detail::product(n_tokens, cols), "x", fn);
    if (!input_scales.empty()) detail::need(input_scales.size(), cols, "input_scales", fn);
    detail::check(quant_quantize_activations(x.data(), n_tokens, cols, input_scales.empty() ? nullptr : input_scales.data(),
                                             dst.data(), dst.size(), token_scales.data(), token_scales.size()),
                  fn);
}
inline int8_activations quantize_activations(span<const float> x, std::size_t n_tokens, std::size_t cols,
                                             span<const float> input_scales = {}) {
    detail::need(x.size(), detail::product(n_tokens, cols), "x", "quant_quantize_activations");
    int8_activations out;
    if (detail::fits(n_tokens, cols)) {
        out.codes.resize(n_tokens * cols);
        out.token_scales.resize(n_tokens);
    }
    quantize_activations(x, n_tokens, cols, input_scales, out.codes, out.token_scales);
    return out;
}
/// out (m x n) = (a . b^T, exact in i32) * a_scales[i] * b_scales[j]; a is m x k, b is n x k INT8.
inline void int8_gemm(span<const std::int8_t> a, span<const float> a_scales, span<const std::int8_t> b,
                      span<const float> b_scales, std::size_t m, std::size_t n, std::size_t k, span<float> out) {
    const char *fn = "quant_int8_gemm";
    detail::need(a.size(), detail::product(m, k), "a", fn);
    detail::need(b.size(), detail::product(n, k), "b", fn);
    detail::need(a_scales.size(), m, "a_scales", fn);
    detail::need(b_scales.size(), n, "b_scales", fn);
    detail::check(quant_int8_gemm(a.data(), a_scales.data(), b.data(), b_scales.data(), m, n, k, out.data(), out.size()), fn);
}
inline std::vector<float> int8_gemm(span<const std::int8_t> a, span<const float> a_scales, span<const std::int8_t> b,
                                    span<const float> b_scales, std::size_t m, std::size_t n, std::size_t k) {
    std::vector<float> out(detail::product(m, n) != std::numeric_limits<std::size_t>::max() ? m * n : 0);
    int8_gemm(a, a_scales, b, b_scales, m, n, k, out);
    return out;
}

// ---- whole-matrix quantization ----------------------------------------------------------------------

/// Owner of a quant_weight: one quantized matrix and everything needed to use or undo it.
class weight {
  public:
    /// Takes ownership of a handle from the C API (NULL gives an empty owner).
    explicit weight(quant_weight *handle) noexcept : handle_(handle) {}
    weight(weight &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    weight &operator=(weight &&other) noexcept {
        if (this != &other) {
            quant_weight_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    weight(const weight &) = delete;
    weight &operator=(const weight &) = delete;
    ~weight() { quant_weight_free(handle_); }

    /// Quantizes the row-major rows x cols matrix w with method m. calib may be null for the
    /// round-to-nearest kinds (INT8, INT4, FP8); AWQ, SmoothQuant and GPTQ need it. opts null = defaults.
    static weight quantize(const quant_method &m, span<const float> w, std::size_t rows, std::size_t cols,
                           const quant_calib *calib = nullptr, const quant_options *opts = nullptr) {
        detail::need(w.size(), detail::product(rows, cols), "w", "quant_quantize");
        quant_weight *out = nullptr;
        detail::check(quant_quantize(&m, opts, w.data(), rows, cols, calib, &out), "quant_quantize");
        return weight(out);
    }
    static weight quantize(const quant_method &m, span<const float> w, std::size_t rows, std::size_t cols,
                           const quant::calib &c, const options *opts = nullptr) {
        return quantize(m, w, rows, cols, c.get(), opts ? opts->get() : nullptr);
    }
    static weight quantize(const quant_method &m, span<const float> w, std::size_t rows, std::size_t cols,
                           const quant::calib &c, const options &opts) {
        return quantize(m, w, rows, cols, c.get(), opts.get());
    }
    /// quantize of a weight given as f16 or bf16 bits; the result equals that of the float overload
    /// on the same values (INT8, INT4 and FP8 convert one row at a time).
    static weight quantize(const quant_method &m, dtype w_dtype, span<const std::uint16_t> w, std::size_t rows,
                           std::size_t cols, const quant_calib *calib = nullptr, const quant_options *opts = nullptr) {
        const char *fn = "quant_quantize_ex";
        detail::half_dtype(w_dtype, fn);
        detail::need(w.size(), detail::product(rows, cols), "w", fn);
        quant_weight *out = nullptr;
        detail::check(quant_quantize_ex(&m, opts, static_cast<std::int32_t>(w_dtype), w.data(), rows, cols, calib, &out),
                      fn);
        return weight(out);
    }
    static weight quantize(const quant_method &m, dtype w_dtype, span<const std::uint16_t> w, std::size_t rows,
                           std::size_t cols, const quant::calib &c, const options *opts = nullptr) {
        return quantize(m, w_dtype, w, rows, cols, c.get(), opts ? opts->get() : nullptr);
    }
    /// Quantizes matrices that read the same input (q, k, v; gate and up) together: AWQ and
    /// SmoothQuant give them one input scale. ws[i] holds rows[i] x cols floats.
    static std::vector<weight> quantize_group(const quant_method &m, const std::vector<span<const float>> &ws,
                                              const std::vector<std::size_t> &rows, std::size_t cols,
                                              const quant::calib &c, const options *opts = nullptr) {
        const char *fn = "quant_quantize_group";
        if (ws.size() != rows.size()) detail::fail(QUANT_ERR_SHAPE_MISMATCH, fn, "ws and rows differ in length");
        std::vector<const float *> ptrs(ws.size());
        for (std::size_t i = 0; i < ws.size(); i++) {
            detail::need(ws[i].size(), detail::product(rows[i], cols), "ws[i]", fn);
            ptrs[i] = ws[i].data();
        }
        std::vector<quant_weight *> out(ws.size(), nullptr);
        detail::check(quant_quantize_group(&m, opts ? opts->get() : nullptr, ptrs.data(), rows.data(), ws.size(),
                                           cols, c.get(), out.data()),
                      fn);
        std::vector<weight> result;
        result.reserve(out.size());
        for (quant_weight *h : out) result.emplace_back(h);
        return result;
    }

    /// rows (output features) of the matrix.
    std::size_t rows() const { return shape().first; }
    /// cols (input features) of the matrix.
    std::size_t cols() const { return shape().second; }
    std::pair<std::size_t, std::size_t> shape() const {
        std::pair<std::size_t, std::size_t> s{0, 0};
        detail::check(quant_weight_shape(handle_, &s.first, &s.second), "quant_weight_shape");
        return s;
    }
    /// The method it was quantized with.
    quant::method method() const {
        quant_method out{};
        detail::check(quant_weight_method(handle_, &out), "quant_weight_method");
        return quant::method(out);
    }
    /// Packed codes: each row starts on a byte, b bits per element, least significant bit first.
    span<const std::uint8_t> data() const noexcept { return view(quant_weight_data); }
    /// The codes as signed bytes (INT8 and SmoothQuant weights: one int8 per element, for int8_gemm).
    span<const std::int8_t> int8_data() const noexcept {
        span<const std::uint8_t> d = data();
        return span<const std::int8_t>(reinterpret_cast<const std::int8_t *>(d.data()), d.size());
    }
    /// One scale per group.
    span<const float> scales() const noexcept { return view(quant_weight_scales); }
    /// Zero points, empty when the method has none.
    span<const float> zero_points() const noexcept { return view(quant_weight_zero_points); }
    /// AWQ/SmoothQuant per-input-channel scales s (the layer computes (x / s) . W_q^T); else empty.
    span<const float> input_scales() const noexcept { return view(quant_weight_input_scales); }
    /// GPTQ act-order group index of each column; else empty.
    span<const std::int32_t> group_index() const noexcept { return view(quant_weight_group_index); }

    /// The effective weight in the original input basis into dst (rows * cols floats).
    void dequantize(span<float> dst) const {
        detail::check(quant_weight_dequantize(handle_, dst.data(), dst.size()), "quant_weight_dequantize");
    }
    std::vector<float> dequantize() const {
        auto s = shape();
        std::vector<float> dst(s.first * s.second);
        dequantize(dst);
        return dst;
    }

    /// Lengths, in elements, of the tensors of a GPTQ checkpoint (pack_gptq).
    struct gptq_lengths {
        std::size_t qweight, qzeros, scales, g_idx;
    };
    /// The tensors of a GPTQ checkpoint (AutoGPTQ's QuantLinear layout): qweight int32
    /// [cols*bits/32][rows], qzeros int32 [groups][rows*bits/32], scales f16 bits [groups][rows],
    /// g_idx int32 [cols].
    struct gptq_tensors {
        std::vector<std::int32_t> qweight, qzeros;
        std::vector<std::uint16_t> scales;
        std::vector<std::int32_t> g_idx;
    };
    /// Throws QUANT_ERR_INVALID_ARGUMENT (not GPTQ/INT4, or a shape not a multiple of 32 bits) or
    /// QUANT_ERR_UNSUPPORTED (bits not 2, 3, 4, 8).
    gptq_lengths gptq_sizes() const {
        gptq_lengths s{0, 0, 0, 0};
        detail::check(quant_weight_gptq_sizes(handle_, &s.qweight, &s.qzeros, &s.scales, &s.g_idx), "quant_weight_gptq_sizes");
        return s;
    }
    /// Packs as a GPTQ checkpoint into caller buffers; format_version 1 stores zero - 1 (AutoGPTQ),
    /// 2 the zero itself (GPTQModel "gptq_v2"). Nothing is written on error.
    void pack_gptq(std::uint32_t format_version, span<std::int32_t> qweight, span<std::int32_t> qzeros,
                   span<std::uint16_t> scales_f16, span<std::int32_t> g_idx) const {
        detail::check(quant_weight_pack_gptq(handle_, format_version, qweight.data(), qweight.size(), qzeros.data(),
                                             qzeros.size(), scales_f16.data(), scales_f16.size(), g_idx.data(),
                                             g_idx.size()),
                      "quant_weight_pack_gptq");
    }
    gptq_tensors pack_gptq(std::uint32_t format_version) const {
        gptq_lengths s = gptq_sizes();
        gptq_tensors t;
        t.qweight.resize(s.qweight);
        t.qzeros.resize(s.qzeros);
        t.scales.resize(s.scales);
        t.g_idx.resize(s.g_idx);
        pack_gptq(format_version, t.qweight, t.qzeros, t.scales, t.g_idx);
        return t;
    }
    /// Lengths, in elements, of the tensors of an AWQ GEMM checkpoint (pack_awq).
    struct awq_lengths {
        std::size_t qweight, qzeros, scales;
    };
    /// The tensors of an AWQ GEMM checkpoint (AutoAWQ's WQLinear_GEMM layout): qweight int32
    /// [cols][rows/8] and qzeros int32 [groups][rows/8] with the nibble order 0,2,4,6,1,3,5,7;
    /// scales f16 bits [groups][rows].
    struct awq_tensors {
        std::vector<std::int32_t> qweight, qzeros;
        std::vector<std::uint16_t> scales;
    };
    /// Throws QUANT_ERR_INVALID_ARGUMENT (not AWQ/INT4/GPTQ without act-order, rows not a multiple of
    /// 8, cols not a multiple of the group size) or QUANT_ERR_UNSUPPORTED (not 4-bit).
    awq_lengths awq_sizes() const {
        awq_lengths s{0, 0, 0};
        detail::check(quant_weight_awq_sizes(handle_, &s.qweight, &s.qzeros, &s.scales), "quant_weight_awq_sizes");
        return s;
    }
    /// Packs as an AWQ GEMM checkpoint into caller buffers (AWQ: the codes of W diag(s), see quant.h).
    void pack_awq(span<std::int32_t> qweight, span<std::int32_t> qzeros, span<std::uint16_t> scales_f16) const {
        detail::check(quant_weight_pack_awq(handle_, qweight.data(), qweight.size(), qzeros.data(), qzeros.size(),
                                            scales_f16.data(), scales_f16.size()),
                      "quant_weight_pack_awq");
    }
    awq_tensors pack_awq() const {
        awq_lengths s = awq_sizes();
        awq_tensors t;
        t.qweight.resize(s.qweight);
        t.qzeros.resize(s.qzeros);
        t.scales.resize(s.scales);
        pack_awq(t.qweight, t.qzeros, t.scales);
        return t;
    }

    quant_weight *get() const noexcept { return handle_; }
    quant_weight *release() noexcept { return std::exchange(handle_, nullptr); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    template <class T> span<const T> view(const T *(*fn)(const quant_weight *, std::size_t *)) const noexcept {
        std::size_t len = 0;
        const T *p = fn(handle_, &len);
        return p ? span<const T>(p, len) : span<const T>();
    }
    quant_weight *handle_ = nullptr;
};

} // namespace quant

#endif /* QUANT_HPP */
