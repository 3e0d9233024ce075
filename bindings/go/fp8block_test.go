package quant

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func readBlockFP8(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir(), "blockfp8", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func f32sLE(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// The torch fixtures (DeepSeek-V3's formulas): every code, scale_inv and decoded value.
func TestFP8BlockFixtures(t *testing.T) {
	if FP8BlockDeepSeek != 128 {
		t.Fatalf("FP8BlockDeepSeek = %d", FP8BlockDeepSeek)
	}
	n, err := FP8BlockScaleCount(300, 260, 128, 128)
	must(t, err)
	if n != 9 {
		t.Fatalf("scale count %d", n)
	}
	src := f32sLE(readBlockFP8(t, "wide_300x260.in.f32"))
	codes, s, err := FP8BlockQuantize(src, 300, 260, 128, 128)
	must(t, err)
	if !bytes.Equal(codes, readBlockFP8(t, "wide_300x260.codes.u8")) {
		t.Error("codes differ from torch")
	}
	if !reflect.DeepEqual(s, f32sLE(readBlockFP8(t, "wide_300x260.scale_inv.f32"))) {
		t.Error("scale_inv differs from torch")
	}
	d, err := FP8BlockDequantize(codes, s, 300, 260, 128, 128)
	must(t, err)
	want := f32sLE(readBlockFP8(t, "wide_300x260.deq.f32"))
	for i := range d {
		if math.Float32bits(d[i]) != math.Float32bits(want[i]) {
			t.Fatalf("dequantized[%d] = %v, torch %v", i, d[i], want[i])
		}
	}
	raw := readBlockFP8(t, "bf16_140x260.in.bf16")
	h := make([]uint16, len(raw)/2)
	for i := range h {
		h[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	codes, s, err = FP8BlockQuantize16(DTypeBF16, h, 140, 260, 128, 128)
	must(t, err)
	if !bytes.Equal(codes, readBlockFP8(t, "bf16_140x260.codes.u8")) ||
		!reflect.DeepEqual(s, f32sLE(readBlockFP8(t, "bf16_140x260.scale_inv.f32"))) {
		t.Error("bf16 source differs from torch")
	}
}

func TestFP8BlockErrors(t *testing.T) {
	w := make([]float32, 130*20)
	for i := range w {
		w[i] = float32(i%13) - 6
	}
	_, err := FP8BlockScaleCount(0, 5, 128, 128)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = FP8BlockQuantize(w, 130, 20, 0, 128)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = FP8BlockQuantize(w, 130, 21, 128, 128)
	expectErr(t, err, ErrBufferTooSmall)
	_, _, err = FP8BlockQuantize(w, -1, 20, 128, 128)
	expectErr(t, err, ErrInvalidArgument)
	bad := append([]float32(nil), w...)
	bad[77] = float32(math.NaN())
	_, _, err = FP8BlockQuantize(bad, 130, 20, 128, 128)
	expectErr(t, err, ErrNonFinite)
	_, _, err = FP8BlockQuantize16(DTypeF32, make([]uint16, len(w)), 130, 20, 128, 128)
	expectErr(t, err, ErrInvalidArgument)
	codes, s, err := FP8BlockQuantize(w, 130, 20, 128, 128)
	must(t, err)
	_, err = FP8BlockDequantize(codes, s[:1], 130, 20, 128, 128)
	expectErr(t, err, ErrBufferTooSmall)
	s[1] = float32(math.Inf(1))
	_, err = FP8BlockDequantize(codes, s, 130, 20, 128, 128)
	expectErr(t, err, ErrNonFinite)
}
