package quant

/*
#include <quant.h>
*/
import "C"

// Block-scaled FP8 E4M3: DeepSeek-V3's FP8 weights (E4M3 codes and one float scale_inv per 128 x 128
// block, edge blocks included) and its per-token activation groups (blocks of 1 x 128).

// FP8BlockDeepSeek is the block side of DeepSeek-V3's checkpoints (weight_block_size [128, 128]).
const FP8BlockDeepSeek = int(C.QUANT_FP8_BLOCK_DEEPSEEK)

// FP8BlockScaleCount is ceil(rows / blockRows) * ceil(cols / blockCols), the number of scale_inv
// values; a zero or negative dimension is ErrInvalidArgument.
func FP8BlockScaleCount(rows, cols, blockRows, blockCols int) (int, error) {
	const fn = "quant_fp8_block_scale_count"
	r, c, br, bc, err := blockDims(fn, rows, cols, blockRows, blockCols)
	if err != nil {
		return 0, err
	}
	return sizeCall(fn, func() C.size_t { return C.quant_fp8_block_scale_count(r, c, br, bc) })
}

func blockDims(fn string, rows, cols, blockRows, blockCols int) (r, c, br, bc C.size_t, err error) {
	if r, c, _, err = shape(fn, rows, cols, 0); err != nil {
		return
	}
	if br, err = size(fn, "block_rows", blockRows); err != nil {
		return
	}
	bc, err = size(fn, "block_cols", blockCols)
	return
}

// FP8BlockQuantize quantizes the row-major rows x cols matrix src per block: scale_inv =
// amax / 448, code = fp8_e4m3(x / scale_inv) saturating; an all-zero block has scale_inv 0.
// scaleInv is row-major over the grid of blocks, as DeepSeek-V3's weight_scale_inv.
func FP8BlockQuantize(src []float32, rows, cols, blockRows, blockCols int) (codes []uint8, scaleInv []float32, err error) {
	const fn = "quant_fp8_block_quantize"
	if _, _, _, err = dims(fn, len(src), rows, cols, 0); err != nil {
		return nil, nil, err
	}
	nb, err := FP8BlockScaleCount(rows, cols, blockRows, blockCols)
	if err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, rows*cols)
	scaleInv = make([]float32, nb)
	r, c, br, bc, _ := blockDims(fn, rows, cols, blockRows, blockCols)
	err = call(fn, func() C.quant_status {
		return C.quant_fp8_block_quantize((*C.float)(ptr(src)), r, c, br, bc, (*C.uint8_t)(ptr(codes)),
			C.size_t(len(codes)), (*C.float)(ptr(scaleInv)), C.size_t(len(scaleInv)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, scaleInv, nil
}

// FP8BlockQuantize16 is FP8BlockQuantize of f16 or bf16 bits (the results equal those of the same
// values as float32).
func FP8BlockQuantize16(dtype DType, src []uint16, rows, cols, blockRows, blockCols int) (codes []uint8, scaleInv []float32, err error) {
	const fn = "quant_fp8_block_quantize_ex"
	if _, _, _, err = dims16(fn, dtype, len(src), rows, cols); err != nil {
		return nil, nil, err
	}
	nb, err := FP8BlockScaleCount(rows, cols, blockRows, blockCols)
	if err != nil {
		return nil, nil, err
	}
	codes = make([]uint8, rows*cols)
	scaleInv = make([]float32, nb)
	r, c, br, bc, _ := blockDims(fn, rows, cols, blockRows, blockCols)
	err = call(fn, func() C.quant_status {
		return C.quant_fp8_block_quantize_ex(C.int32_t(dtype), ptr(src), r, c, br, bc, (*C.uint8_t)(ptr(codes)),
			C.size_t(len(codes)), (*C.float)(ptr(scaleInv)), C.size_t(len(scaleInv)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, scaleInv, nil
}

// FP8BlockDequantize returns fp8(code) * scale_inv of its block for every element (DeepSeek-V3's
// weight_dequant).
func FP8BlockDequantize(codes []uint8, scaleInv []float32, rows, cols, blockRows, blockCols int) ([]float32, error) {
	const fn = "quant_fp8_block_dequantize"
	if _, _, _, err := dims(fn, len(codes), rows, cols, 0); err != nil {
		return nil, err
	}
	nb, err := FP8BlockScaleCount(rows, cols, blockRows, blockCols)
	if err != nil {
		return nil, err
	}
	if err := need(fn, "scale_inv", len(scaleInv), uint64(nb)); err != nil {
		return nil, err
	}
	dst := make([]float32, rows*cols)
	r, c, br, bc, _ := blockDims(fn, rows, cols, blockRows, blockCols)
	err = call(fn, func() C.quant_status {
		return C.quant_fp8_block_dequantize((*C.uint8_t)(ptr(codes)), (*C.float)(ptr(scaleInv)), r, c, br, bc,
			(*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}
