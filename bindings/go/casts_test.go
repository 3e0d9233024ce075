package quant

import (
	"math"
	"reflect"
	"testing"
)

func TestCasts(t *testing.T) {
	x := []float32{1, -2, 0.5, 65504, float32(math.Inf(1))}
	h, err := F32ToF16(x)
	must(t, err)
	if !reflect.DeepEqual(h, []uint16{0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00}) {
		t.Errorf("F32ToF16: %#x", h)
	}
	back, err := F16ToF32(h)
	must(t, err)
	if !reflect.DeepEqual(back, x) {
		t.Errorf("F16ToF32: %v", back)
	}
	b, err := F32ToBF16(x)
	must(t, err)
	if b[0] != 0x3f80 || b[1] != 0xc000 {
		t.Errorf("F32ToBF16: %#x", b)
	}
	bb, err := BF16ToF32(b[:3])
	must(t, err)
	if !reflect.DeepEqual(bb, x[:3]) {
		t.Errorf("BF16ToF32: %v", bb)
	}

	negZero := float32(math.Copysign(0, -1)) // a Go constant -0.0 is +0
	big := []float32{1000, float32(math.NaN()), 448, negZero}
	sat, err := F32ToFP8E4M3(big, true)
	must(t, err)
	if sat[0] != 0x7e || sat[1]&0x7f != 0x7f || sat[2] != 0x7e || sat[3] != 0x80 {
		t.Errorf("F32ToFP8E4M3 saturating: %#x", sat)
	}
	nosat, err := F32ToFP8E4M3(big, false)
	must(t, err)
	if nosat[0]&0x7f != 0x7f {
		t.Errorf("F32ToFP8E4M3 overflow without saturation is not NaN: %#x", nosat[0])
	}
	dec, err := FP8E4M3ToF32(sat)
	must(t, err)
	if dec[0] != 448 || !math.IsNaN(float64(dec[1])) || !math.Signbit(float64(dec[3])) {
		t.Errorf("FP8E4M3ToF32: %v", dec)
	}
	e5, err := F32ToFP8E5M2([]float32{1, -2, 1e6}, false)
	must(t, err)
	e5s, err := F32ToFP8E5M2([]float32{1e6}, true)
	must(t, err)
	d5, err := FP8E5M2ToF32(append(e5, e5s...))
	must(t, err)
	if d5[0] != 1 || d5[1] != -2 || !math.IsInf(float64(d5[2]), 1) || d5[3] != 57344 {
		t.Errorf("FP8 E5M2: %v", d5)
	}

	// Error paths: every Into checks the destination before the call and leaves it untouched.
	small16 := []uint16{0xAAAA}
	expectErr(t, F32ToF16Into(small16, x), ErrBufferTooSmall)
	expectErr(t, F32ToBF16Into(small16, x), ErrBufferTooSmall)
	if small16[0] != 0xAAAA {
		t.Error("destination written on error")
	}
	smallF := []float32{7}
	expectErr(t, F16ToF32Into(smallF, h), ErrBufferTooSmall)
	expectErr(t, BF16ToF32Into(smallF, h), ErrBufferTooSmall)
	expectErr(t, FP8E4M3ToF32Into(smallF, sat), ErrBufferTooSmall)
	expectErr(t, FP8E5M2ToF32Into(smallF, sat), ErrBufferTooSmall)
	small8 := []uint8{1}
	expectErr(t, F32ToFP8E4M3Into(small8, x, true), ErrBufferTooSmall)
	expectErr(t, F32ToFP8E5M2Into(small8, x, true), ErrBufferTooSmall)
	if smallF[0] != 7 || small8[0] != 1 {
		t.Error("destination written on error")
	}
	// Empty slices are fine (NULL with length 0).
	empty, err := F32ToF16(nil)
	must(t, err)
	if len(empty) != 0 {
		t.Error("F32ToF16(nil) is not empty")
	}
}

func TestFP8Scaled(t *testing.T) {
	const rows, cols = 3, 10
	w := testMatrix(rows, cols)
	codes, scales, err := FP8E4M3Quantize(w, rows, cols, 0)
	must(t, err)
	back, err := FP8E4M3Dequantize(codes, scales, rows, cols, 0)
	must(t, err)
	for i := range w {
		if math.Abs(float64(back[i]-w[i])) > 0.07*math.Abs(float64(w[i]))+1e-3 {
			t.Fatalf("element %d: %v -> %v", i, w[i], back[i])
		}
	}
	expectErr(t, FP8E4M3QuantizeInto(make([]uint8, rows*cols), make([]float32, 2), w, rows, cols, 0), ErrBufferTooSmall)
	bad := append([]float32(nil), w...)
	bad[4] = float32(math.NaN())
	_, _, err = FP8E4M3Quantize(bad, rows, cols, 0)
	expectErr(t, err, ErrNonFinite)
	_, err = FP8E4M3Dequantize(codes, scales[:1], rows, cols, 0)
	expectErr(t, err, ErrBufferTooSmall)
	expectErr(t, FP8E4M3DequantizeInto(make([]float32, 1), codes, scales, rows, cols, 0), ErrBufferTooSmall)
	_, _, err = FP8E4M3Quantize(w, rows, cols, -4)
	expectErr(t, err, ErrInvalidArgument)
}
