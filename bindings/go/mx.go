package quant

/*
#include <quant.h>
*/
import "C"

// OCP Microscaling (MX) formats and NVFP4 (see quant_mx_quantize and quant_nvfp4_quantize in
// quant.h for the rules and layouts).

// MXElem is the element type of an MX block (QUANT_MX_*).
type MXElem int32

// The MX element types: 32 values of a row share one E8M0 scale byte.
const (
	MXFP8E4M3 MXElem = C.QUANT_MX_FP8_E4M3 // 8-bit E4M3 codes, one a byte
	MXFP8E5M2 MXElem = C.QUANT_MX_FP8_E5M2 // 8-bit E5M2 codes, one a byte
	MXFP6E2M3 MXElem = C.QUANT_MX_FP6_E2M3 // 6-bit E2M3 codes, four in three bytes
	MXFP6E3M2 MXElem = C.QUANT_MX_FP6_E3M2 // 6-bit E3M2 codes, four in three bytes
	MXFP4E2M1 MXElem = C.QUANT_MX_FP4_E2M1 // 4-bit E2M1 codes, two a byte (even column low)
	MXINT8    MXElem = C.QUANT_MX_INT8     // int8 codes, value q / 64
)

// MXPackedSize is the bytes of the packed codes of a rows x cols matrix of elem. An unknown elem or
// an invalid shape is ErrInvalidArgument.
func MXPackedSize(elem MXElem, rows, cols int) (int, error) {
	const fn = "quant_mx_packed_size"
	r, c, _, err := shape(fn, rows, cols, 0)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_mx_packed_size(C.int32_t(elem), r, c) })
}

// MXScaleCount is the number of E8M0 scale bytes of a rows x cols MX matrix: rows * ceil(cols / 32).
func MXScaleCount(rows, cols int) (int, error) {
	const fn = "quant_mx_scale_count"
	r, c, _, err := shape(fn, rows, cols, 0)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_mx_scale_count(r, c) })
}

// MXQuantize quantizes a row-major rows x cols matrix to MX with element type elem: packed codes and
// one E8M0 scale byte per block of 32. NaN or infinity is ErrNonFinite.
func MXQuantize(elem MXElem, src []float32, rows, cols int) (codes, scales []byte, err error) {
	codes, scales, err = mxBuffers("quant_mx_quantize", elem, len(src), rows, cols)
	if err != nil {
		return nil, nil, err
	}
	if err = MXQuantizeInto(codes, scales, elem, src, rows, cols); err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

// MXQuantizeInto quantizes into codes (MXPackedSize bytes) and scales (MXScaleCount bytes). After
// an argument error nothing was written; after ErrNonFinite both hold zeros.
func MXQuantizeInto(codes, scales []byte, elem MXElem, src []float32, rows, cols int) error {
	const fn = "quant_mx_quantize"
	r, c, _, err := dims(fn, len(src), rows, cols, 0)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_mx_quantize(C.int32_t(elem), (*C.float)(ptr(src)), r, c, (*C.uint8_t)(ptr(codes)),
			C.size_t(len(codes)), (*C.uint8_t)(ptr(scales)), C.size_t(len(scales)))
	})
}

// MXQuantize16 is MXQuantize of f16 or bf16 bits (dtype DTypeF16 or DTypeBF16); the bytes equal those
// of MXQuantize on the same values.
func MXQuantize16(elem MXElem, dtype DType, src []uint16, rows, cols int) (codes, scales []byte, err error) {
	const fn = "quant_mx_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(src), rows, cols)
	if err != nil {
		return nil, nil, err
	}
	if codes, scales, err = mxBuffers(fn, elem, len(src), rows, cols); err != nil {
		return nil, nil, err
	}
	err = call(fn, func() C.quant_status {
		return C.quant_mx_quantize_ex(C.int32_t(elem), C.int32_t(dtype), ptr(src), r, c, (*C.uint8_t)(ptr(codes)),
			C.size_t(len(codes)), (*C.uint8_t)(ptr(scales)), C.size_t(len(scales)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

func mxBuffers(fn string, elem MXElem, have, rows, cols int) (codes, scales []byte, err error) {
	if _, _, _, err = dims(fn, have, rows, cols, 0); err != nil {
		return nil, nil, err
	}
	np, err := MXPackedSize(elem, rows, cols)
	if err != nil {
		return nil, nil, err
	}
	ns, err := MXScaleCount(rows, cols)
	if err != nil {
		return nil, nil, err
	}
	return make([]byte, np), make([]byte, ns), nil
}

// MXDequantize returns value(code) * 2^(scale - 127) for the rows*cols elements.
func MXDequantize(elem MXElem, codes, scales []byte, rows, cols int) ([]float32, error) {
	if _, _, _, err := shape("quant_mx_dequantize", rows, cols, 0); err != nil {
		return nil, err
	}
	if product(rows, cols) > uint64(maxInt) {
		return nil, fail(StatusInvalidArgument, "quant_mx_dequantize", "%d x %d overflows", rows, cols)
	}
	dst := make([]float32, rows*cols)
	if err := MXDequantizeInto(dst, elem, codes, scales, rows, cols); err != nil {
		return nil, err
	}
	return dst, nil
}

// MXDequantizeInto writes the values into dst (rows*cols floats).
func MXDequantizeInto(dst []float32, elem MXElem, codes, scales []byte, rows, cols int) error {
	const fn = "quant_mx_dequantize"
	r, c, _, err := shape(fn, rows, cols, 0)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_mx_dequantize(C.int32_t(elem), (*C.uint8_t)(ptr(codes)), C.size_t(len(codes)),
			(*C.uint8_t)(ptr(scales)), C.size_t(len(scales)), r, c, (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
}

// NVFP4Sizes are the bytes of the packed codes (rows * ceil(cols / 2)) and of the E4M3 block scales
// (rows * ceil(cols / 16)) of a rows x cols NVFP4 matrix.
func NVFP4Sizes(rows, cols int) (codes, scales int, err error) {
	const fn = "quant_nvfp4_packed_size"
	r, c, _, err := shape(fn, rows, cols, 0)
	if err != nil {
		return 0, 0, err
	}
	if codes, err = sizeCall(fn, func() C.size_t { return C.quant_nvfp4_packed_size(r, c) }); err != nil {
		return 0, 0, err
	}
	scales, err = sizeCall("quant_nvfp4_scale_count", func() C.size_t { return C.quant_nvfp4_scale_count(r, c) })
	return codes, scales, err
}

// NVFP4 is an NVFP4-quantized matrix: packed E2M1 codes, E4M3 block scales and the per-tensor
// global scale (compressed-tensors' weight_packed, weight_scale, weight_global_scale).
type NVFP4 struct {
	Codes, Scales []byte
	GlobalScale   float32
}

// NVFP4Quantize quantizes a row-major rows x cols matrix as compressed-tensors does (bit-exact).
func NVFP4Quantize(src []float32, rows, cols int) (*NVFP4, error) {
	const fn = "quant_nvfp4_quantize"
	r, c, _, err := dims(fn, len(src), rows, cols, 0)
	if err != nil {
		return nil, err
	}
	np, ns, err := NVFP4Sizes(rows, cols)
	if err != nil {
		return nil, err
	}
	q := &NVFP4{Codes: make([]byte, np), Scales: make([]byte, ns)}
	var g C.float
	err = call(fn, func() C.quant_status {
		return C.quant_nvfp4_quantize((*C.float)(ptr(src)), r, c, (*C.uint8_t)(ptr(q.Codes)), C.size_t(np),
			(*C.uint8_t)(ptr(q.Scales)), C.size_t(ns), &g)
	})
	if err != nil {
		return nil, err
	}
	q.GlobalScale = float32(g)
	return q, nil
}

// NVFP4Quantize16 is NVFP4Quantize of f16 or bf16 bits; the result equals that of the same values.
func NVFP4Quantize16(dtype DType, src []uint16, rows, cols int) (*NVFP4, error) {
	const fn = "quant_nvfp4_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(src), rows, cols)
	if err != nil {
		return nil, err
	}
	np, ns, err := NVFP4Sizes(rows, cols)
	if err != nil {
		return nil, err
	}
	q := &NVFP4{Codes: make([]byte, np), Scales: make([]byte, ns)}
	var g C.float
	err = call(fn, func() C.quant_status {
		return C.quant_nvfp4_quantize_ex(C.int32_t(dtype), ptr(src), r, c, (*C.uint8_t)(ptr(q.Codes)), C.size_t(np),
			(*C.uint8_t)(ptr(q.Scales)), C.size_t(ns), &g)
	})
	if err != nil {
		return nil, err
	}
	q.GlobalScale = float32(g)
	return q, nil
}

// NVFP4GlobalScale is the global scale NVFP4Quantize computes for a tensor whose largest magnitude
// is amax; for layers an engine fuses (q/k/v, gate/up), the scale of the group's largest amax, which
// its members share. amax must be finite and >= 0.
func NVFP4GlobalScale(amax float32) (float32, error) {
	const fn = "quant_nvfp4_global_scale"
	g := float32(C.quant_nvfp4_global_scale(C.float(amax)))
	if g == 0 {
		return 0, fail(StatusInvalidArgument, fn, "amax is %v: it must be finite and >= 0", amax)
	}
	return g, nil
}

// NVFP4QuantizeWithGlobal is NVFP4Quantize under a given global scale (finite, > 0) instead of the
// matrix's own.
func NVFP4QuantizeWithGlobal(src []float32, rows, cols int, globalScale float32) (*NVFP4, error) {
	const fn = "quant_nvfp4_quantize_with_global"
	r, c, _, err := dims(fn, len(src), rows, cols, 0)
	if err != nil {
		return nil, err
	}
	np, ns, err := NVFP4Sizes(rows, cols)
	if err != nil {
		return nil, err
	}
	q := &NVFP4{Codes: make([]byte, np), Scales: make([]byte, ns), GlobalScale: globalScale}
	err = call(fn, func() C.quant_status {
		return C.quant_nvfp4_quantize_with_global(C.QUANT_DTYPE_F32, ptr(src), r, c, C.float(globalScale),
			(*C.uint8_t)(ptr(q.Codes)), C.size_t(np), (*C.uint8_t)(ptr(q.Scales)), C.size_t(ns))
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Dequantize returns e2m1(code) * (e4m3(scale) / GlobalScale) for the rows*cols elements.
func (q *NVFP4) Dequantize(rows, cols int) ([]float32, error) {
	const fn = "quant_nvfp4_dequantize"
	r, c, _, err := shape(fn, rows, cols, 0)
	if err != nil {
		return nil, err
	}
	if product(rows, cols) > uint64(maxInt) {
		return nil, fail(StatusInvalidArgument, fn, "%d x %d overflows", rows, cols)
	}
	dst := make([]float32, rows*cols)
	err = call(fn, func() C.quant_status {
		return C.quant_nvfp4_dequantize((*C.uint8_t)(ptr(q.Codes)), C.size_t(len(q.Codes)), (*C.uint8_t)(ptr(q.Scales)),
			C.size_t(len(q.Scales)), C.float(q.GlobalScale), r, c, (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}
