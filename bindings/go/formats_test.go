package quant

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func TestGGMLSizes(t *testing.T) {
	for _, c := range []struct {
		t           GGMLType
		block, size int
		name        string
	}{{GGMLQ4_0, 32, 18, "q4_0"}, {GGMLQ4_1, 32, 20, "q4_1"}, {GGMLQ5_0, 32, 22, "q5_0"}, {GGMLQ5_1, 32, 24, "q5_1"},
		{GGMLQ8_0, 32, 34, "q8_0"}, {GGMLQ2_K, 256, 84, "q2_K"}, {GGMLQ3_K, 256, 110, "q3_K"},
		{GGMLQ4_K, 256, 144, "q4_K"}, {GGMLQ5_K, 256, 176, "q5_K"}, {GGMLQ6_K, 256, 210, "q6_K"},
		{GGMLIQ4_NL, 32, 18, "iq4_nl"}, {GGMLMXFP4, 32, 17, "mxfp4"}, {GGMLIQ4_XS, 256, 136, "iq4_xs"},
		{GGMLNVFP4, 64, 36, "nvfp4"}, {GGMLTQ1_0, 256, 54, "tq1_0"}, {GGMLTQ2_0, 256, 66, "tq2_0"}} {
		b, err := c.t.BlockSize()
		must(t, err)
		s, err := c.t.TypeSize()
		must(t, err)
		r, err := c.t.RowSize(4 * c.block)
		must(t, err)
		name, err := c.t.Name()
		must(t, err)
		if b != c.block || s != c.size || r != 4*c.size || name != c.name || c.t.String() != c.name {
			t.Errorf("%d: block %d, size %d, row %d, name %q", c.t, b, s, r, name)
		}
	}
	if r, err := GGMLQ8_0.RowSize(0); r != 0 || err != nil {
		t.Errorf("RowSize(0) = %d, %v", r, err)
	}
	_, err := GGMLType(1).BlockSize()
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLType(99).TypeSize()
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLQ8_0.RowSize(33)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLQ8_0.RowSize(-32)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLType(0).Name()
	expectErr(t, err, ErrInvalidArgument)
	if s := GGMLType(0).String(); s != "GGMLType(0)" {
		t.Errorf("String of an unknown type: %q", s)
	}
}

func TestGGMLRoundTrip(t *testing.T) {
	const rows, cols = 4, 384
	w := load(t, "encoder.layer.0.attention.self.query.weight", rows*cols)
	blocks, err := GGMLQuantize(GGMLQ8_0, w, rows, cols)
	must(t, err)
	if len(blocks) != rows*12*34 {
		t.Fatalf("%d bytes", len(blocks))
	}
	back, err := GGMLDequantize(GGMLQ8_0, blocks, rows*cols)
	must(t, err)
	// Q8_0: |x - x'| <= d/2 + 127 |d - f16(d)| < 0.6 d per block, d = amax / 127.
	for b := 0; b < rows*cols/32; b++ {
		amax := 0.0
		for _, v := range w[b*32 : b*32+32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		for i := b * 32; i < b*32+32; i++ {
			if math.Abs(float64(w[i]-back[i])) > 0.6*amax/127 {
				t.Fatalf("value %d: %g -> %g (block amax %g)", i, w[i], back[i], amax)
			}
		}
	}
	// The other types round-trip a real row within a loose bound (wider for 2 and 3 bits and for MXFP4).
	for _, ty := range []GGMLType{GGMLQ4_0, GGMLQ4_1, GGMLQ5_0, GGMLQ5_1, GGMLQ2_K, GGMLQ3_K, GGMLQ4_K, GGMLQ5_K, GGMLQ6_K,
		GGMLIQ4_NL, GGMLMXFP4, GGMLIQ4_XS, GGMLNVFP4} {
		bound := map[GGMLType]float64{GGMLQ2_K: 0.15, GGMLQ3_K: 0.05, GGMLMXFP4: 0.05}[ty]
		if bound == 0 {
			bound = 0.02
		}
		b, err := GGMLQuantize(ty, w[:512], 1, 512)
		must(t, err)
		d := make([]float32, 512)
		must(t, GGMLDequantizeInto(d, ty, b))
		var num, den float64
		for i, v := range w[:512] {
			num += float64(d[i]-v) * float64(d[i]-v)
			den += float64(v) * float64(v)
		}
		if num/den > bound {
			t.Errorf("%v: relative error %g", ty, num/den)
		}
	}
	// f16 and bf16 sources give the bytes of the same values as float32.
	for _, dt := range []DType{DTypeF16, DTypeBF16} {
		h, w16 := half(t, dt, w)
		got, err := GGMLQuantize16(GGMLQ4_0, dt, h, rows, cols)
		must(t, err)
		want, err := GGMLQuantize(GGMLQ4_0, w16, rows, cols)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("dtype %d: Q4_0 of 16-bit source differs", dt)
		}
	}

	// The importance-weighted path: nil weights is GGMLQuantize; Q8_0 ignores them; a K-quant with
	// weights writes other bytes; the weights are checked and nothing is written on error.
	imp := make([]float32, 512)
	for i := range imp {
		imp[i] = 1 + float32(i%5)
	}
	for _, c := range []struct {
		ty      GGMLType
		weights []float32
		same    bool
	}{{GGMLQ4_K, nil, true}, {GGMLQ8_0, imp, true}, {GGMLQ4_K, imp, false}} {
		got, err := GGMLQuantizeWeighted(c.ty, w[:512], 1, 512, c.weights)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := GGMLQuantize(c.ty, w[:512], 1, 512)
		if bytes.Equal(got, want) != c.same {
			t.Errorf("GGMLQuantizeWeighted(%v, weights %v): equal to GGMLQuantize is %v", c.ty, c.weights != nil, !c.same)
		}
	}
	_, err = GGMLQuantizeWeighted(GGMLQ4_K, w[:512], 1, 512, imp[:511])
	expectErr(t, err, ErrShapeMismatch)
	imp[3] = -1
	wdst := bytes.Repeat([]byte{0xAB}, 288)
	expectErr(t, GGMLQuantizeWeightedInto(wdst, GGMLQ4_K, w[:512], 1, 512, imp), ErrInvalidArgument)
	if !bytes.Equal(wdst, bytes.Repeat([]byte{0xAB}, 288)) {
		t.Error("dst written on error")
	}

	nanW := append([]float32(nil), w[:64]...)
	nanW[40] = float32(math.NaN())
	_, err = GGMLQuantize(GGMLQ8_0, nanW, 2, 32)
	expectErr(t, err, ErrNonFinite)
	_, err = GGMLQuantize(GGMLQ8_0, w, 1, 33)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLQuantize(GGMLType(5), w, 1, 32)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLQuantize(GGMLQ8_0, w[:31], 1, 32)
	expectErr(t, err, ErrBufferTooSmall)
	small := bytes.Repeat([]byte{0xAB}, 33)
	expectErr(t, GGMLQuantizeInto(small, GGMLQ8_0, w, 1, 32), ErrBufferTooSmall)
	if !bytes.Equal(small, bytes.Repeat([]byte{0xAB}, 33)) {
		t.Error("dst written on error")
	}
	h, _ := half(t, DTypeF16, w[:32])
	_, err = GGMLQuantize16(GGMLQ8_0, DTypeF32, h, 1, 32)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLQuantize16(GGMLQ8_0, DType(7), h, 1, 32)
	expectErr(t, err, ErrInvalidArgument)
	h[5] = 0x7e00 // NaN
	expectErr(t, GGMLQuantize16Into(make([]byte, 34), GGMLQ8_0, DTypeF16, h, 1, 32), ErrNonFinite)
	_, err = GGMLDequantize(GGMLQ8_0, blocks, 33)
	expectErr(t, err, ErrInvalidArgument)
	_, err = GGMLDequantize(GGMLQ8_0, blocks[:33], 32)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = GGMLDequantize(GGMLQ8_0, blocks, -1)
	expectErr(t, err, ErrInvalidArgument)
	inf := append([]byte{0x00, 0x7c}, blocks[2:34]...) // d = +inf
	_, err = GGMLDequantize(GGMLQ8_0, inf, 32)
	expectErr(t, err, ErrNonFinite)
}

// half converts w to f16 or bf16 bits, and returns them with the float32 values they hold.
func half(t *testing.T, dt DType, w []float32) ([]uint16, []float32) {
	t.Helper()
	if dt == DTypeF16 {
		h, err := F32ToF16(w)
		must(t, err)
		back, err := F16ToF32(h)
		must(t, err)
		return h, back
	}
	h, err := F32ToBF16(w)
	must(t, err)
	back, err := BF16ToF32(h)
	must(t, err)
	return h, back
}

func TestHalfSources(t *testing.T) {
	const rows, cols = 8, 384
	w0 := load(t, "encoder.layer.0.attention.self.query.weight", rows*cols)
	for _, dt := range []DType{DTypeF16, DTypeBF16} {
		h, w := half(t, dt, w0)
		c1, s1, err := Int8Quantize16(dt, h, rows, cols, 64)
		must(t, err)
		c2, s2, err := Int8Quantize(w, rows, cols, 64)
		must(t, err)
		if !reflect.DeepEqual(c1, c2) || !reflect.DeepEqual(s1, s2) {
			t.Errorf("dtype %d: INT8 differs", dt)
		}
		q1, sc1, z1, err := Int4Quantize16(dt, h, rows, cols, 128)
		must(t, err)
		q2, sc2, z2, err := Int4Quantize(w, rows, cols, 128)
		must(t, err)
		if !reflect.DeepEqual(q1, q2) || !reflect.DeepEqual(sc1, sc2) || !reflect.DeepEqual(z1, z2) {
			t.Errorf("dtype %d: INT4 differs", dt)
		}
		f1, fs1, err := FP8E4M3Quantize16(dt, h, rows, cols, 0)
		must(t, err)
		f2, fs2, err := FP8E4M3Quantize(w, rows, cols, 0)
		must(t, err)
		if !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(fs1, fs2) {
			t.Errorf("dtype %d: FP8 differs", dt)
		}
		a, err := Quantize16(Int4(128), nil, dt, h, rows, cols, nil)
		must(t, err)
		b, err := Quantize(Int4(128), nil, w, rows, cols, nil)
		must(t, err)
		da, err := a.Dequantize()
		must(t, err)
		db, err := b.Dequantize()
		must(t, err)
		if !reflect.DeepEqual(da, db) {
			t.Errorf("dtype %d: Quantize16 differs", dt)
		}
		a.Close()
		b.Close()
	}
	h, _ := half(t, DTypeF16, w0)
	inf := append([]uint16(nil), h[:cols]...)
	inf[7] = 0x7c00
	_, _, err := Int8Quantize16(DTypeF16, inf, 1, cols, 0)
	expectErr(t, err, ErrNonFinite)
	_, _, err = Int8Quantize16(DType(3), h, rows, cols, 0)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = Int8Quantize16(DTypeF16, h, rows+1, cols, 0)
	expectErr(t, err, ErrBufferTooSmall)
	_, _, _, err = Int4Quantize16(DTypeBF16, h, 0, cols, 128)
	expectErr(t, err, ErrInvalidArgument)
	_, _, _, err = Int4Quantize16(DTypeF16, inf, 1, cols, 128)
	expectErr(t, err, ErrNonFinite)
	_, _, _, err = Int4Quantize16(DTypeF16, h, rows, cols, -1)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = FP8E4M3Quantize16(DTypeF32, h, rows, cols, 0)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = FP8E4M3Quantize16(DTypeF16, inf, 1, cols, 0)
	expectErr(t, err, ErrNonFinite)
	_, err = Quantize16(Int8(0), nil, DType(-1), h, rows, cols, nil)
	expectErr(t, err, ErrInvalidArgument)
	_, err = Quantize16(GPTQ(4, 128), nil, DTypeF16, h, rows, cols, nil) // no calibration
	expectErr(t, err, ErrInvalidArgument)
	_, err = Quantize16(Int8(0), nil, DTypeF16, inf, 1, cols, nil)
	expectErr(t, err, ErrNonFinite)
}

// f16 bits -> float32.
func f16(t *testing.T, bits uint16) float32 {
	v, err := F16ToF32([]uint16{bits})
	must(t, err)
	return v[0]
}

// A real GPTQ weight (MiniLM layer 5 query, act-order) packed as a GPTQ checkpoint and unpacked as
// engines do; the AWQ weight of the same layer packed as an AWQ GEMM checkpoint.
func TestCheckpointPacking(t *testing.T) {
	const rows, cols, tokens, gs = 384, 384, 256, 128
	const groups = cols / gs
	w := load(t, "encoder.layer.5.attention.self.query.weight", rows*cols)
	x := load(t, "x_calib.layer5.attn_in", tokens*cols)
	cal, err := NewCalib(cols)
	must(t, err)
	defer cal.Close()
	must(t, cal.Add(x))
	opts, err := NewOptions()
	must(t, err)
	defer opts.Close()
	must(t, opts.SetActOrder(true))
	must(t, opts.SetSampleTokens(128))
	g, err := Quantize(GPTQ(4, gs), opts, w, rows, cols, cal)
	must(t, err)
	defer g.Close()

	s, err := g.GPTQSizes()
	must(t, err)
	if s != (GPTQSizes{cols * 4 / 32 * rows, groups * rows * 4 / 32, groups * rows, cols}) {
		t.Fatalf("GPTQ sizes %+v", s)
	}
	v2, err := g.PackGPTQ(2)
	must(t, err)
	v1, err := g.PackGPTQ(1)
	must(t, err)
	if !reflect.DeepEqual(v1.QWeight, v2.QWeight) || !reflect.DeepEqual(v1.Scales, v2.Scales) || !reflect.DeepEqual(v1.GIdx, v2.GIdx) {
		t.Error("v1 and v2 differ beyond qzeros")
	}
	deq, err := g.Dequantize()
	must(t, err)
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			grp := int(v2.GIdx[j])
			q := (uint32(v2.QWeight[(j/8)*rows+r]) >> (4 * (j % 8))) & 15
			z := (uint32(v2.QZeros[grp*(rows/8)+r/8]) >> (4 * (r % 8))) & 15
			z1 := (uint32(v1.QZeros[grp*(rows/8)+r/8]) >> (4 * (r % 8))) & 15
			if z > 0 && z1 != z-1 {
				t.Fatalf("v1 zero %d, v2 zero %d", z1, z)
			}
			scale := f16(t, v2.Scales[grp*rows+r])
			v := scale * (float32(q) - float32(z))
			if math.Abs(float64(v-deq[r*cols+j])) > 16*math.Abs(float64(scale))/1024+1e-7 {
				t.Fatalf("w[%d][%d]: unpacked %g, dequantized %g", r, j, v, deq[r*cols+j])
			}
		}
	}
	_, err = g.PackGPTQ(3)
	expectErr(t, err, ErrInvalidArgument)
	_, err = g.PackGPTQ(-1)
	expectErr(t, err, ErrInvalidArgument)
	qw := make([]int32, s.QWeight-1)
	expectErr(t, g.PackGPTQInto(2, qw, make([]int32, s.QZeros), make([]uint16, s.Scales), make([]int32, s.GIdx)), ErrBufferTooSmall)
	i8, err := Quantize(Int8(0), nil, w, rows, cols, nil)
	must(t, err)
	defer i8.Close()
	_, err = i8.GPTQSizes()
	expectErr(t, err, ErrInvalidArgument)
	_, err = i8.PackGPTQ(2)
	expectErr(t, err, ErrInvalidArgument)
	g3, err := Quantize(GPTQ(3, gs), nil, w, rows, cols, cal)
	must(t, err)
	defer g3.Close()
	t3, err := g3.PackGPTQ(2)
	must(t, err)
	if len(t3.QWeight) != cols*3/32*rows || len(t3.QZeros) != groups*rows*3/32 {
		t.Errorf("3-bit tensors: %d, %d", len(t3.QWeight), len(t3.QZeros))
	}

	a, err := Quantize(AWQ(4, gs), opts, w, rows, cols, cal)
	must(t, err)
	defer a.Close()
	as, err := a.AWQSizes()
	must(t, err)
	if as != (AWQSizes{cols * rows / 8, groups * rows / 8, groups * rows}) {
		t.Fatalf("AWQ sizes %+v", as)
	}
	at, err := a.PackAWQ()
	must(t, err)
	adeq, err := a.Dequantize()
	must(t, err)
	in := a.InputScales()
	inv := [8]int{0, 4, 1, 5, 2, 6, 3, 7} // nibble of output 8c + k (order 0,2,4,6,1,3,5,7)
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			grp := j / gs
			q := (uint32(at.QWeight[j*(rows/8)+r/8]) >> (4 * inv[r%8])) & 15
			z := (uint32(at.QZeros[grp*(rows/8)+r/8]) >> (4 * inv[r%8])) & 15
			scale := f16(t, at.Scales[grp*rows+r])
			v, want := scale*(float32(q)-float32(z)), adeq[r*cols+j]*in[j]
			if math.Abs(float64(v-want)) > 16*math.Abs(float64(scale))/1024+1e-6*math.Abs(float64(want))+1e-7 {
				t.Fatalf("AWQ w[%d][%d]: unpacked %g, want %g", r, j, v, want)
			}
		}
	}
	_, err = g.AWQSizes() // act-order GPTQ
	expectErr(t, err, ErrInvalidArgument)
	_, err = i8.PackAWQ()
	expectErr(t, err, ErrInvalidArgument)
	_, err = g3.AWQSizes()
	expectErr(t, err, ErrUnsupported)
	expectErr(t, a.PackAWQInto(make([]int32, as.QWeight), make([]int32, as.QZeros-1), make([]uint16, as.Scales)), ErrBufferTooSmall)
}
