package quant

/*
#include <quant.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Engine formats: GGUF blocks (llama.cpp), GPTQ and AWQ checkpoint tensors, and f16/bf16 sources.

// GGMLType is a GGML quant type, numbered as GGML numbers it (QUANT_GGML_TYPE_*).
type GGMLType int32

// The GGML types quant reads and writes.
const (
	GGMLQ4_0 GGMLType = C.QUANT_GGML_TYPE_Q4_0 // 32 values in 18 bytes: f16 d, 4-bit codes, (q - 8) * d
	GGMLQ4_1 GGMLType = C.QUANT_GGML_TYPE_Q4_1 // 32 values in 20 bytes: f16 d, m, 4-bit codes, q * d + m
	GGMLQ5_0 GGMLType = C.QUANT_GGML_TYPE_Q5_0 // 32 values in 22 bytes: f16 d, 5-bit codes, (q - 16) * d
	GGMLQ5_1 GGMLType = C.QUANT_GGML_TYPE_Q5_1 // 32 values in 24 bytes: f16 d, m, 5-bit codes, q * d + m
	GGMLQ8_0 GGMLType = C.QUANT_GGML_TYPE_Q8_0 // 32 values in 34 bytes: f16 d, int8 codes, q * d
	GGMLQ2_K GGMLType = C.QUANT_GGML_TYPE_Q2_K // 256 values in 84 bytes (16 4-bit sub-scales and mins, 2-bit codes)
	GGMLQ3_K GGMLType = C.QUANT_GGML_TYPE_Q3_K // 256 values in 110 bytes (16 6-bit sub-scales, 3-bit codes)
	GGMLQ4_K GGMLType = C.QUANT_GGML_TYPE_Q4_K // 256 values in 144 bytes (super-block with 6-bit sub-scales)
	GGMLQ5_K GGMLType = C.QUANT_GGML_TYPE_Q5_K // 256 values in 176 bytes (Q4_K's sub-scales, 5-bit codes)
	GGMLQ6_K GGMLType = C.QUANT_GGML_TYPE_Q6_K // 256 values in 210 bytes (16 int8 sub-scales, 6-bit codes)
	// 32 values in 18 bytes: f16 d, 4-bit codes into 16 non-linear levels, d * kvalues_iq4nl[q]
	GGMLIQ4_NL GGMLType = C.QUANT_GGML_TYPE_IQ4_NL
	// 32 values in 17 bytes: E8M0 exponent, 4-bit E2M1 codes (OCP MXFP4)
	GGMLMXFP4 GGMLType = C.QUANT_GGML_TYPE_MXFP4
	// 256 values in 136 bytes: f16 d, eight 6-bit block scales, IQ4_NL's 4-bit codes
	GGMLIQ4_XS GGMLType = C.QUANT_GGML_TYPE_IQ4_XS
	// 64 values in 36 bytes: four UE4M3 scales of 16 values, 4-bit E2M1 codes (no per-tensor scale)
	GGMLNVFP4 GGMLType = C.QUANT_GGML_TYPE_NVFP4
	// 256 values in 54 bytes: f16 d (the largest magnitude), ternary codes five to a byte, (t - 1) * d
	GGMLTQ1_0 GGMLType = C.QUANT_GGML_TYPE_TQ1_0
	// 256 values in 66 bytes: f16 d (the largest magnitude), ternary codes in 2 bits, (q - 1) * d
	GGMLTQ2_0 GGMLType = C.QUANT_GGML_TYPE_TQ2_0
)

// DType is the element type of a 16-bit source (QUANT_DTYPE_*). The functions taking []float32 are
// the f32 case; the ...16 functions take f16 or bf16 bits in []uint16.
type DType int32

// The source element types.
const (
	DTypeF32  DType = C.QUANT_DTYPE_F32
	DTypeF16  DType = C.QUANT_DTYPE_F16  // IEEE binary16 bits
	DTypeBF16 DType = C.QUANT_DTYPE_BF16 // bfloat16 bits (the top half of a float32)
)

// sizeCall runs a size_t-returning C call whose 0 means an error with a detail (kept per OS thread).
func sizeCall(name string, f func() C.size_t) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := f()
	if n == 0 {
		return 0, &Error{Status: StatusInvalidArgument, Func: name, Detail: lastError()}
	}
	return int(n), nil
}

// BlockSize is the values per block of the type (32, or 256 for the K-quants), as ggml_blck_size.
// An unknown type is ErrInvalidArgument.
func (t GGMLType) BlockSize() (int, error) {
	return sizeCall("quant_ggml_block_size", func() C.size_t { return C.quant_ggml_block_size(C.int32_t(t)) })
}

// TypeSize is the bytes per block of the type (18, 20, 22, 24, 34, 144, 210), as ggml_type_size.
// An unknown type is ErrInvalidArgument.
func (t GGMLType) TypeSize() (int, error) {
	return sizeCall("quant_ggml_type_size", func() C.size_t { return C.quant_ggml_type_size(C.int32_t(t)) })
}

// RowSize is the bytes of one row of nPerRow values (0 for nPerRow 0), as ggml_row_size. An unknown
// type, or a row length that is not a multiple of the block size, is ErrInvalidArgument.
func (t GGMLType) RowSize(nPerRow int) (int, error) {
	const fn = "quant_ggml_row_size"
	n, err := size(fn, "n_per_row", nPerRow)
	if err != nil || nPerRow == 0 {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_ggml_row_size(C.int32_t(t), n) })
}

// Name is GGML's name of the type ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q6_K", "iq4_nl",
// "iq4_xs", "tq1_0", "tq2_0", "mxfp4", "nvfp4"). An unknown type is ErrInvalidArgument.
func (t GGMLType) Name() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := C.quant_ggml_type_name(C.int32_t(t))
	if p == nil {
		return "", &Error{Status: StatusInvalidArgument, Func: "quant_ggml_type_name", Detail: lastError()}
	}
	return C.GoString(p), nil
}

// String is Name, or "GGMLType(n)" for an unknown type.
func (t GGMLType) String() string {
	if name, err := t.Name(); err == nil {
		return name
	}
	return "GGMLType(" + itoa(int64(t)) + ")"
}

// ggmlBytes is nrows * RowSize(nPerRow), or 0 when the arguments are bad (the C call reports them).
func ggmlBytes(t GGMLType, nrows, nPerRow int) int {
	if nrows <= 0 || nPerRow <= 0 {
		return 0
	}
	row := int(C.quant_ggml_row_size(C.int32_t(t), C.size_t(nPerRow)))
	if row == 0 || product(nrows, row) > uint64(maxInt) {
		return 0
	}
	return nrows * row
}

// GGMLQuantize quantizes nrows rows of nPerRow floats (row-major) to GGML blocks, byte for byte as
// ggml's reference quantizer and gguf-py. It returns nrows * RowSize(nPerRow) bytes.
func GGMLQuantize(t GGMLType, src []float32, nrows, nPerRow int) ([]byte, error) {
	dst := make([]byte, ggmlBytes(t, nrows, nPerRow))
	if err := GGMLQuantizeInto(dst, t, src, nrows, nPerRow); err != nil {
		return nil, err
	}
	return dst, nil
}

// GGMLQuantizeInto quantizes into dst, which holds at least nrows * RowSize(nPerRow) bytes (only
// that prefix is written). Nothing is written on error.
func GGMLQuantizeInto(dst []byte, t GGMLType, src []float32, nrows, nPerRow int) error {
	const fn = "quant_ggml_quantize"
	r, n, _, err := dims(fn, len(src), nrows, nPerRow, 0)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_ggml_quantize(C.int32_t(t), (*C.float)(ptr(src)), r, n, ptr(dst), C.size_t(len(dst)))
	})
}

// GGMLQuantizeWeighted is GGMLQuantize with an importance matrix (one weight per column, the
// imatrix of llama-quantize), byte for byte as ggml_quantize_chunk with it. nil weights means none
// (the bytes of GGMLQuantize); otherwise weights holds exactly nPerRow finite values >= 0.
func GGMLQuantizeWeighted(t GGMLType, src []float32, nrows, nPerRow int, weights []float32) ([]byte, error) {
	dst := make([]byte, ggmlBytes(t, nrows, nPerRow))
	if err := GGMLQuantizeWeightedInto(dst, t, src, nrows, nPerRow, weights); err != nil {
		return nil, err
	}
	return dst, nil
}

// GGMLQuantizeWeightedInto is GGMLQuantizeWeighted into dst (see GGMLQuantizeInto). Nothing is
// written on error.
func GGMLQuantizeWeightedInto(dst []byte, t GGMLType, src []float32, nrows, nPerRow int, weights []float32) error {
	const fn = "quant_ggml_quantize_weighted"
	r, n, _, err := dims(fn, len(src), nrows, nPerRow, 0)
	if err != nil {
		return err
	}
	if weights != nil && len(weights) != nPerRow {
		return fail(StatusShapeMismatch, fn, "weights holds %d values, nPerRow is %d", len(weights), nPerRow)
	}
	return call(fn, func() C.quant_status {
		return C.quant_ggml_quantize_weighted(C.int32_t(t), (*C.float)(ptr(src)), r, n, (*C.float)(ptr(weights)),
			ptr(dst), C.size_t(len(dst)))
	})
}

// GGMLQuantize16 is GGMLQuantize of f16 or bf16 bits (dtype DTypeF16 or DTypeBF16), as llama.cpp
// quantizes 16-bit models; the bytes equal those of GGMLQuantize on the same values.
func GGMLQuantize16(t GGMLType, dtype DType, src []uint16, nrows, nPerRow int) ([]byte, error) {
	dst := make([]byte, ggmlBytes(t, nrows, nPerRow))
	if err := GGMLQuantize16Into(dst, t, dtype, src, nrows, nPerRow); err != nil {
		return nil, err
	}
	return dst, nil
}

// GGMLQuantize16Into is GGMLQuantizeInto of f16 or bf16 bits.
func GGMLQuantize16Into(dst []byte, t GGMLType, dtype DType, src []uint16, nrows, nPerRow int) error {
	const fn = "quant_ggml_quantize_ex"
	r, n, _, err := dims16(fn, dtype, len(src), nrows, nPerRow)
	if err != nil {
		return err
	}
	return call(fn, func() C.quant_status {
		return C.quant_ggml_quantize_ex(C.int32_t(t), C.int32_t(dtype), ptr(src), r, n, ptr(dst), C.size_t(len(dst)))
	})
}

// GGMLDequantize decodes the first n values (a positive multiple of the block size) of GGML blocks,
// bit for bit as ggml's dequantize_row_* and gguf-py.
func GGMLDequantize(t GGMLType, src []byte, n int) ([]float32, error) {
	if _, err := size("quant_ggml_dequantize", "n", n); err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	if err := GGMLDequantizeInto(dst, t, src); err != nil {
		return nil, err
	}
	return dst, nil
}

// GGMLDequantizeInto decodes len(dst) values. Nothing is written on error.
func GGMLDequantizeInto(dst []float32, t GGMLType, src []byte) error {
	return call("quant_ggml_dequantize", func() C.quant_status {
		return C.quant_ggml_dequantize(C.int32_t(t), ptr(src), C.size_t(len(src)), (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
}

// dims16 is dims for a 16-bit source: DTypeF32 is ErrInvalidArgument (use the []float32 functions);
// an unknown dtype is passed on and rejected by the library.
func dims16(fn string, dtype DType, have, rows, cols int) (r, c, g C.size_t, err error) {
	if dtype == DTypeF32 {
		err = fail(StatusInvalidArgument, fn, "DTypeF32 with a []uint16 source (use the []float32 function)")
		return
	}
	return dims(fn, have, rows, cols, 0)
}

// ---- GPTQ and AWQ checkpoint tensors ----------------------------------------------------------------

// GPTQSizes are the lengths, in elements, of the tensors of a GPTQ checkpoint.
type GPTQSizes struct {
	QWeight, QZeros, Scales, GIdx int
}

// GPTQTensors are the tensors of a GPTQ checkpoint, laid out as AutoGPTQ's QuantLinear.pack (and
// loaded by AutoGPTQ, GPTQModel, exllama, vLLM and TGI), rows = out_features, cols = in_features:
//   - QWeight: int32 [cols*bits/32][rows], codes packed along the input dimension, lowest bits first;
//   - QZeros: int32 [groups][rows*bits/32], zero - 1 (format 1) or the zero (format 2);
//   - Scales: f16 bits [groups][rows];
//   - GIdx: int32 [cols], the group of each input column.
type GPTQTensors struct {
	QWeight, QZeros []int32
	Scales          []uint16
	GIdx            []int32
}

// GPTQSizes gives the tensor lengths of PackGPTQ. A weight that is not GPTQ (or INT4), or a shape
// whose rows*bits or cols*bits is not a multiple of 32, is ErrInvalidArgument; bits other than 2,
// 3, 4, 8 ErrUnsupported.
func (w *Weight) GPTQSizes() (GPTQSizes, error) {
	var a, b, c, d C.size_t
	err := call("quant_weight_gptq_sizes", func() C.quant_status {
		return C.quant_weight_gptq_sizes(w.p, &a, &b, &c, &d)
	})
	runtime.KeepAlive(w)
	if err != nil {
		return GPTQSizes{}, err
	}
	return GPTQSizes{int(a), int(b), int(c), int(d)}, nil
}

// PackGPTQ writes the weight as the tensors of a GPTQ checkpoint. formatVersion 1 stores zero - 1
// (AutoGPTQ, checkpoint_format "gptq"), 2 the zero itself (GPTQModel, "gptq_v2"). An engine computes
// w[r][j] = scale[g][r] * (q[j][r] - zero[g][r]) with g = GIdx[j]: Dequantize up to the f16 scales.
func (w *Weight) PackGPTQ(formatVersion int) (*GPTQTensors, error) {
	s, err := w.GPTQSizes()
	if err != nil {
		return nil, err
	}
	t := &GPTQTensors{make([]int32, s.QWeight), make([]int32, s.QZeros), make([]uint16, s.Scales), make([]int32, s.GIdx)}
	if err := w.PackGPTQInto(formatVersion, t.QWeight, t.QZeros, t.Scales, t.GIdx); err != nil {
		return nil, err
	}
	return t, nil
}

// PackGPTQInto writes the GPTQ tensors into slices you own, each at least its GPTQSizes length.
// Nothing is written on error.
func (w *Weight) PackGPTQInto(formatVersion int, qweight, qzeros []int32, scales []uint16, gIdx []int32) error {
	const fn = "quant_weight_pack_gptq"
	if formatVersion < 0 || uint64(formatVersion) > 0xFFFFFFFF {
		return fail(StatusInvalidArgument, fn, "format version %d is not 1 or 2", formatVersion)
	}
	err := call(fn, func() C.quant_status {
		return C.quant_weight_pack_gptq(w.p, C.uint32_t(formatVersion),
			(*C.int32_t)(ptr(qweight)), C.size_t(len(qweight)), (*C.int32_t)(ptr(qzeros)), C.size_t(len(qzeros)),
			(*C.uint16_t)(ptr(scales)), C.size_t(len(scales)), (*C.int32_t)(ptr(gIdx)), C.size_t(len(gIdx)))
	})
	runtime.KeepAlive(w)
	return err
}

// AWQSizes are the lengths, in elements, of the tensors of an AWQ GEMM checkpoint.
type AWQSizes struct {
	QWeight, QZeros, Scales int
}

// AWQTensors are the tensors of an AWQ GEMM checkpoint, laid out as AutoAWQ's WQLinear_GEMM (and
// loaded by AutoAWQ, vLLM and TGI):
//   - QWeight: int32 [cols][rows/8], nibble i of word [j][c] holding output 8c + order[i],
//     order = 0, 2, 4, 6, 1, 3, 5, 7;
//   - QZeros: int32 [groups][rows/8], the zero points packed the same way;
//   - Scales: f16 bits [groups][rows].
type AWQTensors struct {
	QWeight, QZeros []int32
	Scales          []uint16
}

// AWQSizes gives the tensor lengths of PackAWQ. A weight that is not AWQ, INT4 or GPTQ without
// act-order, rows not a multiple of 8 or cols not a multiple of the group size is
// ErrInvalidArgument; codes other than 4-bit ErrUnsupported.
func (w *Weight) AWQSizes() (AWQSizes, error) {
	var a, b, c C.size_t
	err := call("quant_weight_awq_sizes", func() C.quant_status {
		return C.quant_weight_awq_sizes(w.p, &a, &b, &c)
	})
	runtime.KeepAlive(w)
	if err != nil {
		return AWQSizes{}, err
	}
	return AWQSizes{int(a), int(b), int(c)}, nil
}

// PackAWQ writes the 4-bit weight as the tensors of an AWQ GEMM checkpoint. For AWQ the codes are
// those of W diag(s), s = InputScales (as AutoAWQ's checkpoints): fold 1/s into the previous
// operation. Dequantize gives W itself.
func (w *Weight) PackAWQ() (*AWQTensors, error) {
	s, err := w.AWQSizes()
	if err != nil {
		return nil, err
	}
	t := &AWQTensors{make([]int32, s.QWeight), make([]int32, s.QZeros), make([]uint16, s.Scales)}
	if err := w.PackAWQInto(t.QWeight, t.QZeros, t.Scales); err != nil {
		return nil, err
	}
	return t, nil
}

// PackAWQInto writes the AWQ tensors into slices you own, each at least its AWQSizes length.
// Nothing is written on error.
func (w *Weight) PackAWQInto(qweight, qzeros []int32, scales []uint16) error {
	err := call("quant_weight_pack_awq", func() C.quant_status {
		return C.quant_weight_pack_awq(w.p, (*C.int32_t)(ptr(qweight)), C.size_t(len(qweight)),
			(*C.int32_t)(ptr(qzeros)), C.size_t(len(qzeros)), (*C.uint16_t)(ptr(scales)), C.size_t(len(scales)))
	})
	runtime.KeepAlive(w)
	return err
}

// ---- f16 / bf16 sources -----------------------------------------------------------------------------
// The round-to-nearest kernels and Quantize on f16 or bf16 bits, converted one row at a time; the
// results equal bit for bit those of the []float32 functions on the same values.

// Int8Quantize16 is Int8Quantize of f16 or bf16 bits.
func Int8Quantize16(dtype DType, src []uint16, rows, cols, groupSize int) (codes []int8, scales []float32, err error) {
	const fn = "quant_int8_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(src), rows, cols)
	if err != nil {
		return nil, nil, err
	}
	g, err := size(fn, "group_size", groupSize)
	if err != nil {
		return nil, nil, err
	}
	codes = make([]int8, rows*cols)
	scales = make([]float32, ScaleCount(rows, cols, groupSize))
	err = call(fn, func() C.quant_status {
		return C.quant_int8_quantize_ex(C.int32_t(dtype), ptr(src), r, c, g, (*C.int8_t)(ptr(codes)), C.size_t(len(codes)),
			(*C.float)(ptr(scales)), C.size_t(len(scales)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

// Int4Quantize16 is Int4Quantize of f16 or bf16 bits.
func Int4Quantize16(dtype DType, src []uint16, rows, cols, groupSize int) (codes []uint8, scales []float32, zeros []uint8, err error) {
	const fn = "quant_int4_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(src), rows, cols)
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := size(fn, "group_size", groupSize)
	if err != nil {
		return nil, nil, nil, err
	}
	codes = make([]uint8, Int4PackedSize(rows, cols))
	scales = make([]float32, ScaleCount(rows, cols, groupSize))
	zeros = make([]uint8, len(scales))
	err = call(fn, func() C.quant_status {
		return C.quant_int4_quantize_ex(C.int32_t(dtype), ptr(src), r, c, g, (*C.uint8_t)(ptr(codes)), C.size_t(len(codes)),
			(*C.float)(ptr(scales)), (*C.uint8_t)(ptr(zeros)), C.size_t(len(scales)))
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return codes, scales, zeros, nil
}

// FP8E4M3Quantize16 is FP8E4M3Quantize of f16 or bf16 bits.
func FP8E4M3Quantize16(dtype DType, src []uint16, rows, cols, groupSize int) (codes []uint8, scales []float32, err error) {
	const fn = "quant_fp8_e4m3_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(src), rows, cols)
	if err != nil {
		return nil, nil, err
	}
	g, err := size(fn, "group_size", groupSize)
	if err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, rows*cols)
	scales = make([]float32, ScaleCount(rows, cols, groupSize))
	err = call(fn, func() C.quant_status {
		return C.quant_fp8_e4m3_quantize_ex(C.int32_t(dtype), ptr(src), r, c, g, (*C.uint8_t)(ptr(codes)), C.size_t(len(codes)),
			(*C.float)(ptr(scales)), C.size_t(len(scales)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, scales, nil
}

// Quantize16 is Quantize of a weight given as f16 or bf16 bits; the result equals that of Quantize
// on the same values (INT8, INT4 and FP8 convert one row at a time).
func Quantize16(m Method, opts *Options, dtype DType, w []uint16, rows, cols int, calib *Calib) (*Weight, error) {
	const fn = "quant_quantize_ex"
	r, c, _, err := dims16(fn, dtype, len(w), rows, cols)
	if err != nil {
		return nil, err
	}
	cm := m.c()
	var p *C.quant_weight
	err = call(fn, func() C.quant_status {
		return C.quant_quantize_ex(&cm, opts.handle(), C.int32_t(dtype), unsafe.Pointer(ptr(w)), r, c, calib.handle(), &p)
	})
	runtime.KeepAlive(opts)
	runtime.KeepAlive(calib)
	if err != nil {
		return nil, err
	}
	return newWeight(p), nil
}
