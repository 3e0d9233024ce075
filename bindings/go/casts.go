package quant

// #include <quant.h>
import "C"

// The plain casts round to nearest, ties to even, bit-exact with the half crate and numpy/ml_dtypes.
// Half-precision and FP8 values travel as their bit patterns (uint16, uint8).

// F32ToF16 converts to IEEE FP16 bit patterns.
func F32ToF16(src []float32) ([]uint16, error) {
	dst := make([]uint16, len(src))
	return dst, F32ToF16Into(dst, src)
}

// F32ToF16Into converts src into dst, which holds at least len(src) values.
func F32ToF16Into(dst []uint16, src []float32) error {
	const fn = "quant_f32_to_f16"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_f32_to_f16((*C.float)(ptr(src)), (*C.uint16_t)(ptr(dst)), C.size_t(len(src)))
	})
}

// F16ToF32 converts FP16 bit patterns to float32 (exact).
func F16ToF32(src []uint16) ([]float32, error) {
	dst := make([]float32, len(src))
	return dst, F16ToF32Into(dst, src)
}

// F16ToF32Into converts src into dst, which holds at least len(src) values.
func F16ToF32Into(dst []float32, src []uint16) error {
	const fn = "quant_f16_to_f32"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_f16_to_f32((*C.uint16_t)(ptr(src)), (*C.float)(ptr(dst)), C.size_t(len(src)))
	})
}

// F32ToBF16 converts to BF16 bit patterns.
func F32ToBF16(src []float32) ([]uint16, error) {
	dst := make([]uint16, len(src))
	return dst, F32ToBF16Into(dst, src)
}

// F32ToBF16Into converts src into dst, which holds at least len(src) values.
func F32ToBF16Into(dst []uint16, src []float32) error {
	const fn = "quant_f32_to_bf16"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_f32_to_bf16((*C.float)(ptr(src)), (*C.uint16_t)(ptr(dst)), C.size_t(len(src)))
	})
}

// BF16ToF32 converts BF16 bit patterns to float32 (exact).
func BF16ToF32(src []uint16) ([]float32, error) {
	dst := make([]float32, len(src))
	return dst, BF16ToF32Into(dst, src)
}

// BF16ToF32Into converts src into dst, which holds at least len(src) values.
func BF16ToF32Into(dst []float32, src []uint16) error {
	const fn = "quant_bf16_to_f32"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_bf16_to_f32((*C.uint16_t)(ptr(src)), (*C.float)(ptr(dst)), C.size_t(len(src)))
	})
}

// F32ToFP8E4M3 converts to FP8 E4M3FN codes. saturate clamps finite overflow and infinities to
// +-448; without it they become NaN (as ml_dtypes float8_e4m3fn). NaN stays NaN.
func F32ToFP8E4M3(src []float32, saturate bool) ([]uint8, error) {
	dst := make([]uint8, len(src))
	return dst, F32ToFP8E4M3Into(dst, src, saturate)
}

// F32ToFP8E4M3Into converts src into dst, which holds at least len(src) codes.
func F32ToFP8E4M3Into(dst []uint8, src []float32, saturate bool) error {
	const fn = "quant_f32_to_fp8_e4m3"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_f32_to_fp8_e4m3((*C.float)(ptr(src)), (*C.uint8_t)(ptr(dst)), C.size_t(len(src)), C.bool(saturate))
	})
}

// FP8E4M3ToF32 decodes FP8 E4M3FN codes (exact).
func FP8E4M3ToF32(src []uint8) ([]float32, error) {
	dst := make([]float32, len(src))
	return dst, FP8E4M3ToF32Into(dst, src)
}

// FP8E4M3ToF32Into decodes src into dst, which holds at least len(src) values.
func FP8E4M3ToF32Into(dst []float32, src []uint8) error {
	const fn = "quant_fp8_e4m3_to_f32"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_fp8_e4m3_to_f32((*C.uint8_t)(ptr(src)), (*C.float)(ptr(dst)), C.size_t(len(src)))
	})
}

// F32ToFP8E5M2 converts to FP8 E5M2 codes; saturate clamps finite overflow and infinities to
// +-57344, else they become infinities (as ml_dtypes float8_e5m2).
func F32ToFP8E5M2(src []float32, saturate bool) ([]uint8, error) {
	dst := make([]uint8, len(src))
	return dst, F32ToFP8E5M2Into(dst, src, saturate)
}

// F32ToFP8E5M2Into converts src into dst, which holds at least len(src) codes.
func F32ToFP8E5M2Into(dst []uint8, src []float32, saturate bool) error {
	const fn = "quant_f32_to_fp8_e5m2"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_f32_to_fp8_e5m2((*C.float)(ptr(src)), (*C.uint8_t)(ptr(dst)), C.size_t(len(src)), C.bool(saturate))
	})
}

// FP8E5M2ToF32 decodes FP8 E5M2 codes (exact).
func FP8E5M2ToF32(src []uint8) ([]float32, error) {
	dst := make([]float32, len(src))
	return dst, FP8E5M2ToF32Into(dst, src)
}

// FP8E5M2ToF32Into decodes src into dst, which holds at least len(src) values.
func FP8E5M2ToF32Into(dst []float32, src []uint8) error {
	const fn = "quant_fp8_e5m2_to_f32"
	if err := need(fn, "dst", len(dst), uint64(len(src))); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_fp8_e5m2_to_f32((*C.uint8_t)(ptr(src)), (*C.float)(ptr(dst)), C.size_t(len(src)))
	})
}

// ---- FP8 E4M3 with a scale per row or group ----

// FP8E4M3Quantize quantizes to FP8 E4M3 with per group scale = absmax / 448 (saturating).
func FP8E4M3Quantize(src []float32, rows, cols, groupSize int) (codes []uint8, scales []float32, err error) {
	if _, _, _, err = dims("quant_fp8_e4m3_quantize", len(src), rows, cols, groupSize); err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, rows*cols)
	scales = make([]float32, groups(rows, cols, groupSize))
	if err = FP8E4M3QuantizeInto(codes, scales, src, rows, cols, groupSize); err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

// FP8E4M3QuantizeInto quantizes into dst (rows*cols codes) and scales (ScaleCount values), in one
// pass over src; errors as Int8QuantizeInto (a NaN or infinity leaves dst and scales zero-filled).
func FP8E4M3QuantizeInto(dst []uint8, scales []float32, src []float32, rows, cols, groupSize int) error {
	const fn = "quant_fp8_e4m3_quantize"
	r, c, g, err := dims(fn, len(src), rows, cols, groupSize)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_fp8_e4m3_quantize((*C.float)(ptr(src)), r, c, g, (*C.uint8_t)(ptr(dst)), C.size_t(len(dst)),
			(*C.float)(ptr(scales)), C.size_t(len(scales)))
	})
}

// FP8E4M3Dequantize returns fp8(code) * scale for every element.
func FP8E4M3Dequantize(codes []uint8, scales []float32, rows, cols, groupSize int) ([]float32, error) {
	if _, _, _, err := dims("quant_fp8_e4m3_dequantize", len(codes), rows, cols, groupSize); err != nil {
		return nil, err
	}
	dst := make([]float32, rows*cols)
	if err := FP8E4M3DequantizeInto(dst, codes, scales, rows, cols, groupSize); err != nil {
		return nil, err
	}
	return dst, nil
}

// FP8E4M3DequantizeInto writes fp8(code) * scale into dst (rows*cols values).
func FP8E4M3DequantizeInto(dst []float32, codes []uint8, scales []float32, rows, cols, groupSize int) error {
	const fn = "quant_fp8_e4m3_dequantize"
	r, c, g, err := dims(fn, len(codes), rows, cols, groupSize)
	if err != nil {
		return err
	}
	if rows > 0 && cols > 0 {
		if err := need(fn, "scales", len(scales), uint64(groups(rows, cols, groupSize))); err != nil {
			return err
		}
	}
	return call(fn, func() C.quant_status {
		return C.quant_fp8_e4m3_dequantize((*C.uint8_t)(ptr(codes)), (*C.float)(ptr(scales)), r, c, g,
			(*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
}
