package quant

// #include <quant.h>
import "C"

// Level is a storage precision of weights (quant_level).
type Level int32

// The levels of the C API.
const (
	LevelFP32 Level = C.QUANT_LEVEL_FP32
	LevelFP16 Level = C.QUANT_LEVEL_FP16
	LevelBF16 Level = C.QUANT_LEVEL_BF16
	LevelINT8 Level = C.QUANT_LEVEL_INT8
	LevelINT4 Level = C.QUANT_LEVEL_INT4
)

// Bits per value: 32, 16, 16, 8, 4; 0 for an unknown level.
func (l Level) Bits() uint32 { return uint32(C.quant_level_bits(C.quant_level(l))) }

// ReductionFactor is the size reduction against FP32: 1, 2, 2, 4, 8; 0 for an unknown level.
func (l Level) ReductionFactor() float64 {
	return float64(C.quant_level_reduction_factor(C.quant_level(l)))
}

// Name is "FP32", "FP16", "BF16", "INT8" or "INT4"; "" for an unknown level.
func (l Level) Name() string {
	p := C.quant_level_name(C.quant_level(l))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// String is the level's name, or "Level(n)" for an unknown level.
func (l Level) String() string {
	if n := l.Name(); n != "" {
		return n
	}
	return "Level(" + itoa(int64(l)) + ")"
}

// LevelFromBits maps a bit width to its level: 32, 16 (FP16), 8, 4; any other width is
// ErrInvalidArgument.
func LevelFromBits(bits uint32) (Level, error) {
	var out C.quant_level
	err := call("quant_level_from_bits", func() C.quant_status {
		return C.quant_level_from_bits(C.uint32_t(bits), &out)
	})
	if err != nil {
		return 0, err
	}
	return Level(out), nil
}
