package quant

/*
#include <quant.h>
*/
import "C"

import "unsafe"

// bitsandbytes' 4-bit formats NF4 and FP4 (quantize_4bit without double quantization): blocks of
// blockSize consecutive values of the flattened tensor, a float absmax per block, two codes a byte
// with the first value in the high nibble.

// BNB4Type is a bitsandbytes 4-bit code book (QUANT_BNB4_*).
type BNB4Type int32

// The two code books, numbered as bitsandbytes numbers them.
const (
	BNB4FP4 BNB4Type = C.QUANT_BNB4_FP4
	BNB4NF4 BNB4Type = C.QUANT_BNB4_NF4
)

// BNB4DefaultBlockSize is bitsandbytes' default block size (64).
const BNB4DefaultBlockSize = int(C.QUANT_BNB4_DEFAULT_BLOCKSIZE)

// BNB4PackedSize is ceil(n / 2), the bytes of n packed codes; n 0 or negative is ErrInvalidArgument.
func BNB4PackedSize(n int) (int, error) {
	const fn = "quant_bnb4_packed_size"
	nn, err := size(fn, "n", n)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_bnb4_packed_size(nn) })
}

// BNB4AbsmaxCount is ceil(n / blockSize); n 0 or a block size bitsandbytes does not accept (a power
// of two from 32 to 4096) is ErrInvalidArgument.
func BNB4AbsmaxCount(n, blockSize int) (int, error) {
	const fn = "quant_bnb4_absmax_count"
	nn, err := size(fn, "n", n)
	if err != nil {
		return 0, err
	}
	bs, err := size(fn, "blocksize", blockSize)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_bnb4_absmax_count(nn, bs) })
}

// BNB4Quantize quantizes src (a tensor flattened row-major) byte for byte as bitsandbytes'
// quantize_4bit: packed codes (ceil(len(src) / 2) bytes) and one absmax per block.
func BNB4Quantize(t BNB4Type, src []float32, blockSize int) (codes []uint8, absmax []float32, err error) {
	const fn = "quant_bnb4_quantize"
	na, err := BNB4AbsmaxCount(len(src), blockSize)
	if err != nil {
		return nil, nil, err
	}
	nq, err := BNB4PackedSize(len(src))
	if err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, nq)
	absmax = make([]float32, na)
	err = call(fn, func() C.quant_status {
		return C.quant_bnb4_quantize(C.int32_t(t), (*C.float)(ptr(src)), C.size_t(len(src)), C.size_t(blockSize),
			(*C.uint8_t)(ptr(codes)), C.size_t(len(codes)), (*C.float)(ptr(absmax)), C.size_t(len(absmax)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, absmax, nil
}

// BNB4Quantize16 is BNB4Quantize of f16 or bf16 bits (the results equal those of the same values as
// float32).
func BNB4Quantize16(t BNB4Type, dtype DType, src []uint16, blockSize int) (codes []uint8, absmax []float32, err error) {
	const fn = "quant_bnb4_quantize_ex"
	if dtype == DTypeF32 {
		return nil, nil, fail(StatusInvalidArgument, fn, "DTypeF32 with a []uint16 source (use BNB4Quantize)")
	}
	na, err := BNB4AbsmaxCount(len(src), blockSize)
	if err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, (len(src)+1)/2)
	absmax = make([]float32, na)
	err = call(fn, func() C.quant_status {
		return C.quant_bnb4_quantize_ex(C.int32_t(t), C.int32_t(dtype), ptr(src), C.size_t(len(src)), C.size_t(blockSize),
			(*C.uint8_t)(ptr(codes)), C.size_t(len(codes)), (*C.float)(ptr(absmax)), C.size_t(len(absmax)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, absmax, nil
}

// BNB4Dequantize decodes n values: code_book[code] * absmax of its block (dequantize_4bit to float32).
func BNB4Dequantize(t BNB4Type, codes []uint8, absmax []float32, n, blockSize int) ([]float32, error) {
	const fn = "quant_bnb4_dequantize"
	na, err := BNB4AbsmaxCount(n, blockSize)
	if err != nil {
		return nil, err
	}
	if err := need(fn, "src", len(codes), uint64((n+1)/2)); err != nil {
		return nil, err
	}
	if err := need(fn, "absmax", len(absmax), uint64(na)); err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	err = call(fn, func() C.quant_status {
		return C.quant_bnb4_dequantize(C.int32_t(t), (*C.uint8_t)(ptr(codes)), (*C.float)(ptr(absmax)), C.size_t(n),
			C.size_t(blockSize), (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// Double quantization (quantize_4bit with compress_statistics=True): the block absmax values minus an
// offset, coded to 8 bits on bitsandbytes' signed dynamic map in blocks of BNB4NestedBlockSize.

// BNB4NestedBlockSize is the block size of the 8-bit step over the absmax values (256).
const BNB4NestedBlockSize = int(C.QUANT_BNB4_NESTED_BLOCKSIZE)

// BNB4Nested is the double-quantized statistics of a 4-bit tensor: one 8-bit code per 4-bit block
// (bitsandbytes' uint8 absmax), one float per 256 of them (state2's absmax), and the offset.
type BNB4Nested struct {
	QAbsmax []uint8
	Absmax2 []float32
	Offset  float32
}

// BNB4NestedCount is ceil(ceil(n / blockSize) / 256), the number of Absmax2 values; n 0 or a block
// size bitsandbytes does not accept is ErrInvalidArgument.
func BNB4NestedCount(n, blockSize int) (int, error) {
	const fn = "quant_bnb4_nested_count"
	nn, err := size(fn, "n", n)
	if err != nil {
		return 0, err
	}
	bs, err := size(fn, "blocksize", blockSize)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_bnb4_nested_count(nn, bs) })
}

// BNB4AbsmaxMean is the library's offset rule: the mean of absmax as its float64 sum in index order
// over the count, rounded once to float32. Empty absmax is ErrInvalidArgument, a NaN or an infinity
// ErrNonFinite.
func BNB4AbsmaxMean(absmax []float32) (float32, error) {
	const fn = "quant_bnb4_absmax_mean"
	var mean C.float
	err := call(fn, func() C.quant_status {
		return C.quant_bnb4_absmax_mean((*C.float)(ptr(absmax)), C.size_t(len(absmax)), &mean)
	})
	if err != nil {
		return 0, err
	}
	return float32(mean), nil
}

// BNB4QuantizeNested quantizes src as bitsandbytes' quantize_4bit with compress_statistics=True,
// byte for byte given the offset: the codes of BNB4Quantize and the double-quantized statistics.
// offset nil uses the library's mean rule (BNB4AbsmaxMean of the block absmax values); bitsandbytes'
// own offset is torch's float32 mean, whose last bits depend on the machine, so pass a checkpoint's
// offset to reproduce its bytes.
func BNB4QuantizeNested(t BNB4Type, src []float32, blockSize int, offset *float32) ([]uint8, BNB4Nested, error) {
	return bnb4QuantizeNested(t, DTypeF32, unsafe.Pointer(ptr(src)), len(src), blockSize, offset)
}

// BNB4QuantizeNested16 is BNB4QuantizeNested of f16 or bf16 bits (the results equal those of the same
// values as float32).
func BNB4QuantizeNested16(t BNB4Type, dtype DType, src []uint16, blockSize int, offset *float32) ([]uint8, BNB4Nested, error) {
	if dtype == DTypeF32 {
		return nil, BNB4Nested{}, fail(StatusInvalidArgument, "quant_bnb4_quantize_nested",
			"DTypeF32 with a []uint16 source (use BNB4QuantizeNested)")
	}
	return bnb4QuantizeNested(t, dtype, ptr(src), len(src), blockSize, offset)
}

func bnb4QuantizeNested(t BNB4Type, dtype DType, src unsafe.Pointer, n, blockSize int, offset *float32) ([]uint8, BNB4Nested, error) {
	const fn = "quant_bnb4_quantize_nested"
	na, err := BNB4AbsmaxCount(n, blockSize)
	if err != nil {
		return nil, BNB4Nested{}, err
	}
	n2, err := BNB4NestedCount(n, blockSize)
	if err != nil {
		return nil, BNB4Nested{}, err
	}
	codes := make([]uint8, (n+1)/2)
	st := BNB4Nested{QAbsmax: make([]uint8, na), Absmax2: make([]float32, n2)}
	var used C.float
	err = call(fn, func() C.quant_status {
		return C.quant_bnb4_quantize_nested(C.int32_t(t), C.int32_t(dtype), src, C.size_t(n), C.size_t(blockSize),
			(*C.float)(unsafe.Pointer(offset)), (*C.uint8_t)(ptr(codes)), C.size_t(len(codes)),
			(*C.uint8_t)(ptr(st.QAbsmax)), C.size_t(na), (*C.float)(ptr(st.Absmax2)), C.size_t(n2), &used)
	})
	if err != nil {
		return nil, BNB4Nested{}, err
	}
	st.Offset = float32(used)
	return codes, st, nil
}

// BNB4NestedAbsmax decodes the statistics to the absmax values (dequantize_blockwise + offset), which
// BNB4Dequantize takes.
func BNB4NestedAbsmax(st BNB4Nested) ([]float32, error) {
	const fn = "quant_bnb4_nested_absmax"
	count := len(st.QAbsmax)
	if err := need(fn, "absmax2", len(st.Absmax2), uint64((count+BNB4NestedBlockSize-1)/BNB4NestedBlockSize)); err != nil {
		return nil, err
	}
	dst := make([]float32, count)
	err := call(fn, func() C.quant_status {
		return C.quant_bnb4_nested_absmax((*C.uint8_t)(ptr(st.QAbsmax)), (*C.float)(ptr(st.Absmax2)), C.float(st.Offset),
			C.size_t(count), (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// BNB4DequantizeNested decodes n values quantized with double-quantized statistics (dequantize_4bit of
// a nested state to float32).
func BNB4DequantizeNested(t BNB4Type, codes []uint8, st BNB4Nested, n, blockSize int) ([]float32, error) {
	const fn = "quant_bnb4_dequantize_nested"
	na, err := BNB4AbsmaxCount(n, blockSize)
	if err != nil {
		return nil, err
	}
	n2, err := BNB4NestedCount(n, blockSize)
	if err != nil {
		return nil, err
	}
	if err := need(fn, "src", len(codes), uint64((n+1)/2)); err != nil {
		return nil, err
	}
	if err := need(fn, "qabsmax", len(st.QAbsmax), uint64(na)); err != nil {
		return nil, err
	}
	if err := need(fn, "absmax2", len(st.Absmax2), uint64(n2)); err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	err = call(fn, func() C.quant_status {
		return C.quant_bnb4_dequantize_nested(C.int32_t(t), (*C.uint8_t)(ptr(codes)), (*C.uint8_t)(ptr(st.QAbsmax)),
			(*C.float)(ptr(st.Absmax2)), C.float(st.Offset), C.size_t(n), C.size_t(blockSize), (*C.float)(ptr(dst)),
			C.size_t(len(dst)))
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}
