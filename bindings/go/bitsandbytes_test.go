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

func readBNB4(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir(), "bnb4", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// bitsandbytes' own bytes, absmax and decoded values (tests/data/bnb4).
func TestBNB4Fixtures(t *testing.T) {
	if BNB4DefaultBlockSize != 64 {
		t.Fatalf("default block size %d", BNB4DefaultBlockSize)
	}
	src := f32sLE(readBNB4(t, "wide_bs64.in.f32"))
	for _, c := range []struct {
		ty   BNB4Type
		name string
	}{{BNB4NF4, "nf4"}, {BNB4FP4, "fp4"}} {
		codes, absmax, err := BNB4Quantize(c.ty, src, 64)
		must(t, err)
		if !bytes.Equal(codes, readBNB4(t, "wide_bs64."+c.name+".codes.u8")) {
			t.Errorf("%s: codes differ from bitsandbytes", c.name)
		}
		if !reflect.DeepEqual(absmax, f32sLE(readBNB4(t, "wide_bs64."+c.name+".absmax.f32"))) {
			t.Errorf("%s: absmax differs from bitsandbytes", c.name)
		}
		d, err := BNB4Dequantize(c.ty, codes, absmax, len(src), 64)
		must(t, err)
		want := f32sLE(readBNB4(t, "wide_bs64."+c.name+".deq.f32"))
		for i := range d {
			if d[i] != want[i] { // FP4 code 8: -0.0 here, either zero there
				t.Fatalf("%s: dequantized[%d] = %v, bitsandbytes %v", c.name, i, d[i], want[i])
			}
		}
	}
	raw := readBNB4(t, "bf16_1000.in.bf16")
	h := make([]uint16, len(raw)/2)
	for i := range h {
		h[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	codes, absmax, err := BNB4Quantize16(BNB4NF4, DTypeBF16, h, 64)
	must(t, err)
	if !bytes.Equal(codes, readBNB4(t, "bf16_1000.nf4.codes.u8")) ||
		!reflect.DeepEqual(absmax, f32sLE(readBNB4(t, "bf16_1000.nf4.absmax.f32"))) {
		t.Error("bf16 source differs from bitsandbytes")
	}
}

func TestBNB4Errors(t *testing.T) {
	w := make([]float32, 300)
	for i := range w {
		w[i] = float32(i%11) - 5
	}
	if n, err := BNB4PackedSize(301); err != nil || n != 151 {
		t.Fatalf("packed size %d %v", n, err)
	}
	_, err := BNB4PackedSize(0)
	expectErr(t, err, ErrInvalidArgument)
	_, err = BNB4AbsmaxCount(300, 48)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = BNB4Quantize(BNB4Type(0), w, 64)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = BNB4Quantize(BNB4NF4, nil, 64)
	expectErr(t, err, ErrInvalidArgument)
	bad := append([]float32(nil), w...)
	bad[200] = float32(math.Inf(-1))
	_, _, err = BNB4Quantize(BNB4FP4, bad, 64)
	expectErr(t, err, ErrNonFinite)
	_, _, err = BNB4Quantize16(BNB4NF4, DTypeF32, make([]uint16, 10), 64)
	expectErr(t, err, ErrInvalidArgument)
	codes, absmax, err := BNB4Quantize(BNB4NF4, w, 64)
	must(t, err)
	_, err = BNB4Dequantize(BNB4NF4, codes[:10], absmax, 300, 64)
	expectErr(t, err, ErrBufferTooSmall)
	absmax[1] = float32(math.NaN())
	_, err = BNB4Dequantize(BNB4NF4, codes, absmax, 300, 64)
	expectErr(t, err, ErrNonFinite)
}
