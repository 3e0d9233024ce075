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

// Double quantization against bitsandbytes' bytes, given its offset; the library's own offset.
func TestBNB4NestedFixtures(t *testing.T) {
	if BNB4NestedBlockSize != 256 {
		t.Fatalf("nested block size %d", BNB4NestedBlockSize)
	}
	src := f32sLE(readBNB4(t, "nested_3blocks.in.f32"))
	for _, c := range []struct {
		ty   BNB4Type
		name string
	}{{BNB4NF4, "nf4"}, {BNB4FP4, "fp4"}} {
		pre := "nested_3blocks." + c.name
		offset := f32sLE(readBNB4(t, pre+".nested.offset.f32"))[0]
		codes, st, err := BNB4QuantizeNested(c.ty, src, 64, &offset)
		must(t, err)
		if st.Offset != offset {
			t.Errorf("%s: offset %v, given %v", c.name, st.Offset, offset)
		}
		if !bytes.Equal(codes, readBNB4(t, pre+".codes.u8")) {
			t.Errorf("%s: codes differ from bitsandbytes", c.name)
		}
		if !bytes.Equal(st.QAbsmax, readBNB4(t, pre+".nested.qabsmax.u8")) {
			t.Errorf("%s: qabsmax differs from bitsandbytes", c.name)
		}
		if !reflect.DeepEqual(st.Absmax2, f32sLE(readBNB4(t, pre+".nested.absmax2.f32"))) {
			t.Errorf("%s: absmax2 differs from bitsandbytes", c.name)
		}
		d, err := BNB4DequantizeNested(c.ty, codes, st, len(src), 64)
		must(t, err)
		want := f32sLE(readBNB4(t, pre+".nested.deq.f32"))
		for i := range d {
			if d[i] != want[i] {
				t.Fatalf("%s: dequantized[%d] = %v, bitsandbytes %v", c.name, i, d[i], want[i])
			}
		}
		absmax, err := BNB4NestedAbsmax(st)
		must(t, err)
		d2, err := BNB4Dequantize(c.ty, codes, absmax, len(src), 64)
		must(t, err)
		if !reflect.DeepEqual(d, d2) {
			t.Errorf("%s: recovered absmax decode differently", c.name)
		}
		plain := f32sLE(readBNB4(t, pre+".absmax.f32"))
		mean, err := BNB4AbsmaxMean(plain)
		must(t, err)
		codes2, st2, err := BNB4QuantizeNested(c.ty, src, 64, nil)
		must(t, err)
		if st2.Offset != mean || !bytes.Equal(codes2, codes) || math.Abs(float64(mean-offset)) > 1e-6*float64(mean) {
			t.Errorf("%s: mean rule offset %v (mean %v, bitsandbytes %v)", c.name, st2.Offset, mean, offset)
		}
	}
	raw := readBNB4(t, "bf16_1000.in.bf16")
	h := make([]uint16, len(raw)/2)
	for i := range h {
		h[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	offset := f32sLE(readBNB4(t, "bf16_1000.nf4.nested.offset.f32"))[0]
	_, st, err := BNB4QuantizeNested16(BNB4NF4, DTypeBF16, h, 64, &offset)
	must(t, err)
	if !bytes.Equal(st.QAbsmax, readBNB4(t, "bf16_1000.nf4.nested.qabsmax.u8")) {
		t.Error("bf16 source: qabsmax differs from bitsandbytes")
	}
}

func TestBNB4NestedErrors(t *testing.T) {
	w := make([]float32, 64*300+5)
	for i := range w {
		w[i] = float32(i%11) - 5
	}
	if n, err := BNB4NestedCount(len(w), 64); err != nil || n != 2 {
		t.Fatalf("nested count %d %v", n, err)
	}
	_, err := BNB4NestedCount(0, 64)
	expectErr(t, err, ErrInvalidArgument)
	_, err = BNB4NestedCount(100, 48)
	expectErr(t, err, ErrInvalidArgument)
	_, err = BNB4AbsmaxMean(nil)
	expectErr(t, err, ErrInvalidArgument)
	_, err = BNB4AbsmaxMean([]float32{1, float32(nan())})
	expectErr(t, err, ErrNonFinite)
	_, _, err = BNB4QuantizeNested(BNB4Type(9), w, 64, nil)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = BNB4QuantizeNested(BNB4NF4, nil, 64, nil)
	expectErr(t, err, ErrInvalidArgument)
	bad := float32(nan())
	_, _, err = BNB4QuantizeNested(BNB4NF4, w, 64, &bad)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = BNB4QuantizeNested16(BNB4NF4, DTypeF32, make([]uint16, 10), 64, nil)
	expectErr(t, err, ErrInvalidArgument)
	inf := append([]float32(nil), w...)
	inf[7000] = float32(math.Inf(1))
	_, _, err = BNB4QuantizeNested(BNB4FP4, inf, 64, nil)
	expectErr(t, err, ErrNonFinite)
	codes, st, err := BNB4QuantizeNested(BNB4NF4, w, 64, nil)
	must(t, err)
	_, err = BNB4DequantizeNested(BNB4NF4, codes[:10], st, len(w), 64)
	expectErr(t, err, ErrBufferTooSmall)
	short := st
	short.Absmax2 = st.Absmax2[:1]
	_, err = BNB4DequantizeNested(BNB4NF4, codes, short, len(w), 64)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = BNB4NestedAbsmax(short)
	expectErr(t, err, ErrBufferTooSmall)
	st.Absmax2[1] = float32(math.Inf(-1))
	_, err = BNB4DequantizeNested(BNB4NF4, codes, st, len(w), 64)
	expectErr(t, err, ErrNonFinite)
	st.Absmax2[1] = 1
	st.Offset = float32(nan())
	_, err = BNB4NestedAbsmax(st)
	expectErr(t, err, ErrInvalidArgument)
}
