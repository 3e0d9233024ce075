// Quantizes a matrix to INT4 with groups of 32 through the C++ layer, and shows an error as an exception.
// Build: c++ -std=c++17 quantize.cpp $(pkg-config --cflags --libs quant)
#include <cmath>
#include <cstdio>
#include <vector>

#include <quant.hpp>

int main() {
    const std::size_t rows = 8, cols = 64;
    std::vector<float> w(rows * cols);
    for (std::size_t i = 0; i < w.size(); i++) w[i] = std::sin(0.1f * static_cast<float>(i));

    quant::weight q = quant::weight::quantize(quant::method::int4(32), w, rows, cols);
    std::vector<float> back = q.dequantize();
    double max_err = 0;
    for (std::size_t i = 0; i < w.size(); i++) max_err = std::fmax(max_err, std::fabs(back[i] - w[i]));
    std::printf("%s: %zu code bytes, %zu scales, max error %.4f\n", q.method().name().c_str(), q.data().size(),
                q.scales().size(), max_err);

    try {
        quant::weight::quantize(quant::method::gptq(4, 128), w, rows, cols); // GPTQ needs a calibration
        return 1;
    } catch (const quant::error &e) {
        std::printf("GPTQ without a calibration is refused, as expected: status %d (%s): %s\n", e.status(),
                    quant::status_string(e.status()), e.detail().c_str());
    }
    return max_err < 0.1 ? 0 : 1;
}
