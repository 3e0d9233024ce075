package quant

import (
	"math"
	"reflect"
	"testing"
)

func TestSizes(t *testing.T) {
	if ScaleCount(3, 10, 4) != 9 || ScaleCount(3, 10, 0) != 3 || ScaleCount(-1, 10, 0) != 0 {
		t.Errorf("ScaleCount: %d %d", ScaleCount(3, 10, 4), ScaleCount(3, 10, 0))
	}
	if Int4PackedSize(3, 10) != 15 || Int4PackedSize(2, 5) != 6 || Int4PackedSize(-2, 5) != 0 {
		t.Errorf("Int4PackedSize: %d %d", Int4PackedSize(3, 10), Int4PackedSize(2, 5))
	}
}

func TestInt8(t *testing.T) {
	const rows, cols, group = 3, 10, 4
	w := testMatrix(rows, cols)
	codes, scales, err := Int8Quantize(w, rows, cols, group)
	must(t, err)
	if len(codes) != rows*cols || len(scales) != 9 {
		t.Fatalf("sizes %d %d", len(codes), len(scales))
	}
	back, err := Int8Dequantize(codes, scales, rows, cols, group)
	must(t, err)
	for i := range w {
		step := scales[(i/cols)*3+(i%cols)/group]
		if math.Abs(float64(back[i]-w[i])) > float64(step)*0.5001 {
			t.Fatalf("element %d: %v -> %v (step %v)", i, w[i], back[i], step)
		}
	}
	// Errors: nothing written, a detail given.
	dst := make([]int8, rows*cols-1)
	sc := make([]float32, 9)
	sc[0] = -1
	expectErr(t, Int8QuantizeInto(dst, sc, w, rows, cols, group), ErrBufferTooSmall)
	if sc[0] != -1 {
		t.Error("scales written on error")
	}
	expectErr(t, Int8QuantizeInto(make([]int8, rows*cols), sc[:8], w, rows, cols, group), ErrBufferTooSmall)
	_, _, err = Int8Quantize(w[:5], rows, cols, group)
	expectErr(t, err, ErrBufferTooSmall)
	_, _, err = Int8Quantize(w, 0, cols, group)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = Int8Quantize(w, -1, cols, group)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = Int8Quantize(w, math.MaxInt, 2, group) // rows * cols overflows
	expectErr(t, err, ErrInvalidArgument)
	_, _, _, err = Int4Quantize(w, math.MaxInt/2+1, 2, group)
	expectErr(t, err, ErrInvalidArgument)
	bad := append([]float32(nil), w...)
	bad[7] = float32(math.NaN())
	_, _, err = Int8Quantize(bad, rows, cols, group)
	expectErr(t, err, ErrNonFinite)
	// Into caller buffers: the same outputs; on a NaN zero-filled ones; on an argument error
	// nothing written.
	c2, s2 := make([]int8, rows*cols), make([]float32, 9)
	must(t, Int8QuantizeInto(c2, s2, w, rows, cols, group))
	if !reflect.DeepEqual(c2, codes) || !reflect.DeepEqual(s2, scales) {
		t.Error("Int8QuantizeInto differs from Int8Quantize")
	}
	expectErr(t, Int8QuantizeInto(c2, s2[:8], bad, rows, cols, group), ErrBufferTooSmall)
	if !reflect.DeepEqual(c2, codes) || !reflect.DeepEqual(s2, scales) {
		t.Error("Int8QuantizeInto wrote on an argument error")
	}
	expectErr(t, Int8QuantizeInto(c2, s2, bad, rows, cols, group), ErrNonFinite)
	for i, v := range c2 {
		if v != 0 || (i < len(s2) && s2[i] != 0) {
			t.Fatal("codes and scales not zero-filled after a NaN")
		}
	}
	p4, s4, z4, err := Int4Quantize(w, rows, cols, group)
	must(t, err)
	p4s, s4s, z4s := make([]uint8, len(p4)), make([]float32, len(s4)), make([]uint8, len(z4))
	must(t, Int4QuantizeInto(p4s, s4s, z4s, w, rows, cols, group))
	if !reflect.DeepEqual(p4, p4s) || !reflect.DeepEqual(s4, s4s) || !reflect.DeepEqual(z4, z4s) {
		t.Error("Int4QuantizeInto differs from Int4Quantize")
	}
	expectErr(t, Int4QuantizeInto(p4s, s4s, z4s, bad, rows, cols, group), ErrNonFinite)
	for _, v := range z4s {
		if v != 0 {
			t.Fatal("zero points not zero-filled after a NaN")
		}
	}
	f8, f8s, err := FP8E4M3Quantize(w, rows, cols, group)
	must(t, err)
	g8, g8s := make([]uint8, len(f8)), make([]float32, len(f8s))
	must(t, FP8E4M3QuantizeInto(g8, g8s, w, rows, cols, group))
	if !reflect.DeepEqual(f8, g8) || !reflect.DeepEqual(f8s, g8s) {
		t.Error("FP8E4M3QuantizeInto differs from FP8E4M3Quantize")
	}
	_, err = Int8Dequantize(codes, scales[:2], rows, cols, group)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int8Dequantize(codes[:3], scales, rows, cols, group)
	expectErr(t, err, ErrBufferTooSmall)
	expectErr(t, Int8DequantizeInto(make([]float32, rows*cols-1), codes, scales, rows, cols, group), ErrBufferTooSmall)
}

func TestInt4(t *testing.T) {
	const rows, cols, group = 3, 10, 4
	w := testMatrix(rows, cols)
	codes, scales, zeros, err := Int4Quantize(w, rows, cols, group)
	must(t, err)
	if len(codes) != 15 || len(scales) != 9 || len(zeros) != 9 {
		t.Fatalf("sizes %d %d %d", len(codes), len(scales), len(zeros))
	}
	back, err := Int4Dequantize(codes, scales, zeros, rows, cols, group)
	must(t, err)
	for i := range w {
		step := scales[(i/cols)*3+(i%cols)/group]
		if math.Abs(float64(back[i]-w[i])) > float64(step)*1.0001 {
			t.Fatalf("element %d: %v -> %v (step %v)", i, w[i], back[i], step)
		}
	}
	expectErr(t, Int4QuantizeInto(make([]uint8, 14), scales, zeros, w, rows, cols, group), ErrBufferTooSmall)
	expectErr(t, Int4QuantizeInto(codes, scales, zeros[:8], w, rows, cols, group), ErrShapeMismatch)
	expectErr(t, Int4QuantizeInto(codes, scales[:8], zeros[:8], w, rows, cols, group), ErrBufferTooSmall)
	bad := append([]float32(nil), w...)
	bad[0] = float32(math.Inf(-1))
	_, _, _, err = Int4Quantize(bad, rows, cols, group)
	expectErr(t, err, ErrNonFinite)
	_, _, _, err = Int4Quantize(w, rows, 0, group)
	expectErr(t, err, ErrInvalidArgument)
	_, err = Int4Dequantize(codes[:14], scales, zeros, rows, cols, group)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int4Dequantize(codes, scales, zeros[:8], rows, cols, group)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int4Dequantize(codes, scales, zeros, -1, cols, group)
	expectErr(t, err, ErrInvalidArgument)
	expectErr(t, Int4DequantizeInto(make([]float32, 29), codes, scales, zeros, rows, cols, group), ErrBufferTooSmall)
}

func TestPackInt4(t *testing.T) {
	vals := []int8{-8, 7, 3, -1, 5}
	packed, err := PackInt4(vals)
	must(t, err)
	if len(packed) != 3 || packed[0] != 0x78 {
		t.Errorf("PackInt4: %#x", packed)
	}
	got, err := UnpackInt4(packed, len(vals))
	must(t, err)
	if !reflect.DeepEqual(got, vals) {
		t.Errorf("UnpackInt4: %v", got)
	}
	expectErr(t, PackInt4Into(make([]uint8, 2), vals), ErrBufferTooSmall)
	expectErr(t, UnpackInt4Into(make([]int8, 4), packed, 5), ErrBufferTooSmall)
	_, err = UnpackInt4(packed[:2], 5)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = UnpackInt4(packed, -1)
	expectErr(t, err, ErrInvalidArgument)
}
