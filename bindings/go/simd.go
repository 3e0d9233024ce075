package quant

// #include <quant.h>
import "C"

// SIMD levels of the kernels (results are the same at every level; only the speed differs).
const (
	SimdScalar = int32(C.QUANT_SIMD_SCALAR)
	SimdAVX2   = int32(C.QUANT_SIMD_AVX2)
	SimdAVX512 = int32(C.QUANT_SIMD_AVX512)
	SimdNEON   = int32(C.QUANT_SIMD_NEON)
	SimdAuto   = int32(C.QUANT_SIMD_AUTO)
)

// MaxThreads is the largest count SetThreads accepts (QUANT_MAX_THREADS).
const MaxThreads = uint(C.QUANT_MAX_THREADS)

// SimdLevel is the SIMD level the kernels use.
func SimdLevel() int32 { return int32(C.quant_simd_level()) }

// SetSimdLevel forces the process-wide SIMD level (SimdAuto: back to the best of the CPU); a level the
// CPU lacks is ErrUnsupported, an unknown value ErrInvalidArgument.
func SetSimdLevel(level int32) error {
	return call("quant_set_simd_level", func() C.quant_status {
		return C.quant_set_simd_level(C.int32_t(level))
	})
}

// SimdLevelName is "scalar", "avx2", "avx512" or "neon"; "" for an unknown level.
func SimdLevelName(level int32) string {
	p := C.quant_simd_level_name(C.int32_t(level))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// SetThreads sets how many threads one large kernel call may use, process-wide (0 = all cores;
// default 1); above MaxThreads it is ErrInvalidArgument (the count is then unchanged). Results are bit-identical for every
// count.
func SetThreads(n uint) error {
	return call("quant_set_threads", func() C.quant_status {
		return C.quant_set_threads(C.size_t(n))
	})
}

// Threads is the count set with SetThreads (0 = all cores).
func Threads() uint { return uint(C.quant_threads()) }
