package quant

// #include <quant.h>
import "C"

// Round-to-nearest kernels over row-major rows x cols matrices. groupSize 0 means one scale per row,
// k > 0 one scale per k consecutive columns of a row (the last group of a row may be shorter).

// ScaleCount is the number of scales of a rows x cols matrix: rows * ceil(cols / groupSize).
func ScaleCount(rows, cols, groupSize int) int {
	if rows < 0 || cols < 0 || groupSize < 0 {
		return 0
	}
	return int(C.quant_scale_count(C.size_t(rows), C.size_t(cols), C.size_t(groupSize)))
}

// Int4PackedSize is the bytes of a packed INT4 matrix: rows * ceil(cols / 2).
func Int4PackedSize(rows, cols int) int {
	if rows < 0 || cols < 0 {
		return 0
	}
	return int(C.quant_int4_packed_size(C.size_t(rows), C.size_t(cols)))
}

// Int8Quantize quantizes to INT8 symmetric: per group scale = absmax / 127,
// q = clamp(round_half_even(x / scale), -127, 127). It returns rows*cols codes and the scales.
func Int8Quantize(src []float32, rows, cols, groupSize int) (codes []int8, scales []float32, err error) {
	if _, _, _, err = dims("quant_int8_quantize", len(src), rows, cols, groupSize); err != nil {
		return nil, nil, err
	}
	codes = make([]int8, rows*cols)
	scales = make([]float32, ScaleCount(rows, cols, groupSize))
	if err = Int8QuantizeInto(codes, scales, src, rows, cols, groupSize); err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

// Int8QuantizeInto quantizes into dst (rows*cols codes) and scales (ScaleCount values), in one
// pass over src. After an argument error (shape, lengths) nothing was written; after a value error
// (ErrNonFinite, or an overflowing group) dst and scales hold zeros.
func Int8QuantizeInto(dst []int8, scales []float32, src []float32, rows, cols, groupSize int) error {
	const fn = "quant_int8_quantize"
	r, c, g, err := dims(fn, len(src), rows, cols, groupSize)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_int8_quantize((*C.float)(ptr(src)), r, c, g, (*C.int8_t)(ptr(dst)), C.size_t(len(dst)),
			(*C.float)(ptr(scales)), C.size_t(len(scales)))
	})
}

// Int8Dequantize returns code * scale for every element.
func Int8Dequantize(codes []int8, scales []float32, rows, cols, groupSize int) ([]float32, error) {
	if _, _, _, err := dims("quant_int8_dequantize", len(codes), rows, cols, groupSize); err != nil {
		return nil, err
	}
	dst := make([]float32, rows*cols)
	if err := Int8DequantizeInto(dst, codes, scales, rows, cols, groupSize); err != nil {
		return nil, err
	}
	return dst, nil
}

// Int8DequantizeInto writes code * scale into dst (rows*cols values).
func Int8DequantizeInto(dst []float32, codes []int8, scales []float32, rows, cols, groupSize int) error {
	const fn = "quant_int8_dequantize"
	r, c, g, err := dims(fn, len(codes), rows, cols, groupSize)
	if err != nil {
		return err
	}
	if rows > 0 && cols > 0 {
		if err := need(fn, "scales", len(scales), uint64(ScaleCount(rows, cols, groupSize))); err != nil {
			return err
		}
	}
	return call(fn, func() C.quant_status {
		return C.quant_int8_dequantize((*C.int8_t)(ptr(codes)), (*C.float)(ptr(scales)), r, c, g,
			(*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
}

// Int4Quantize quantizes to INT4 asymmetric with integer zero points (the GPTQ/AWQ convention).
// codes are packed two a byte, the even column in the low nibble, each row starting on a byte.
func Int4Quantize(src []float32, rows, cols, groupSize int) (codes []uint8, scales []float32, zeros []uint8, err error) {
	if _, _, _, err = dims("quant_int4_quantize", len(src), rows, cols, groupSize); err != nil {
		return nil, nil, nil, err
	}
	codes = make([]uint8, Int4PackedSize(rows, cols))
	scales = make([]float32, ScaleCount(rows, cols, groupSize))
	zeros = make([]uint8, len(scales))
	if err = Int4QuantizeInto(codes, scales, zeros, src, rows, cols, groupSize); err != nil {
		return nil, nil, nil, err
	}
	return codes, scales, zeros, nil
}

// Int4QuantizeInto quantizes into dst (Int4PackedSize bytes), scales and zeros (ScaleCount each), in
// one pass over src; errors as Int8QuantizeInto (a value error leaves dst, scales and zeros zero-filled).
func Int4QuantizeInto(dst []uint8, scales []float32, zeros []uint8, src []float32, rows, cols, groupSize int) error {
	const fn = "quant_int4_quantize"
	r, c, g, err := dims(fn, len(src), rows, cols, groupSize)
	if err != nil {
		return err
	}
	if len(scales) != len(zeros) {
		return fail(StatusShapeMismatch, fn, "scales (%d) and zeros (%d) differ in length", len(scales), len(zeros))
	}
	return call(fn, func() C.quant_status {
		return C.quant_int4_quantize((*C.float)(ptr(src)), r, c, g, (*C.uint8_t)(ptr(dst)), C.size_t(len(dst)),
			(*C.float)(ptr(scales)), (*C.uint8_t)(ptr(zeros)), C.size_t(len(scales)))
	})
}

// Int4Dequantize returns (q - zero) * scale for every element.
func Int4Dequantize(codes []uint8, scales []float32, zeros []uint8, rows, cols, groupSize int) ([]float32, error) {
	if rows < 0 || cols < 0 || product(rows, cols) > uint64(maxInt) {
		return nil, fail(StatusInvalidArgument, "quant_int4_dequantize", "bad shape %d x %d", rows, cols)
	}
	dst := make([]float32, rows*cols)
	if err := Int4DequantizeInto(dst, codes, scales, zeros, rows, cols, groupSize); err != nil {
		return nil, err
	}
	return dst, nil
}

// Int4DequantizeInto writes (q - zero) * scale into dst (rows*cols values).
func Int4DequantizeInto(dst []float32, codes []uint8, scales []float32, zeros []uint8, rows, cols, groupSize int) error {
	const fn = "quant_int4_dequantize"
	r, c, g, err := shape(fn, rows, cols, groupSize)
	if err != nil {
		return err
	}
	if rows > 0 && cols > 0 && product(rows, cols) <= uint64(maxInt) {
		n := uint64(ScaleCount(rows, cols, groupSize))
		if err := need(fn, "codes", len(codes), uint64(Int4PackedSize(rows, cols))); err != nil {
			return err
		}
		if err := need(fn, "scales", len(scales), n); err != nil {
			return err
		}
		if err := need(fn, "zeros", len(zeros), n); err != nil {
			return err
		}
	}
	return call(fn, func() C.quant_status {
		return C.quant_int4_dequantize((*C.uint8_t)(ptr(codes)), (*C.float)(ptr(scales)), (*C.uint8_t)(ptr(zeros)),
			r, c, g, (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
}

// PackInt4 packs signed 4-bit values (-8..7) two a byte, the first in the low nibble.
func PackInt4(values []int8) ([]uint8, error) {
	dst := make([]uint8, (len(values)+1)/2)
	return dst, PackInt4Into(dst, values)
}

// PackInt4Into packs values into dst, which holds at least ceil(len(values) / 2) bytes.
func PackInt4Into(dst []uint8, values []int8) error {
	return call("quant_pack_int4", func() C.quant_status {
		return C.quant_pack_int4((*C.int8_t)(ptr(values)), C.size_t(len(values)), (*C.uint8_t)(ptr(dst)), C.size_t(len(dst)))
	})
}

// UnpackInt4 unpacks n sign-extended 4-bit values from ceil(n / 2) bytes.
func UnpackInt4(src []uint8, n int) ([]int8, error) {
	if _, err := size("quant_unpack_int4", "n", n); err != nil {
		return nil, err
	}
	dst := make([]int8, n)
	return dst, UnpackInt4Into(dst, src, n)
}

// UnpackInt4Into unpacks n values into dst.
func UnpackInt4Into(dst []int8, src []uint8, n int) error {
	const fn = "quant_unpack_int4"
	cn, err := size(fn, "n", n)
	if err != nil {
		return err
	}
	if err := need(fn, "src", len(src), uint64(n/2+n%2)); err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_unpack_int4((*C.uint8_t)(ptr(src)), cn, (*C.int8_t)(ptr(dst)), C.size_t(len(dst)))
	})
}
