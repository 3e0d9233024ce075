package quant

/*
#include <quant.h>
*/
import "C"

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
