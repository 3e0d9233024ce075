package quant

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// mxFixture reads tests/data/mx/<name>: u32 codes_len, u32 scales_len, [f32 global], codes, scales,
// decoded f32.
func mxFixture(t *testing.T, name string, global bool) (codes, scales []byte, g float32, decoded []float32) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir(), "mx", name))
	if err != nil {
		t.Fatal(err)
	}
	nc, ns := int(binary.LittleEndian.Uint32(raw)), int(binary.LittleEndian.Uint32(raw[4:]))
	at := 8
	if global {
		g = math.Float32frombits(binary.LittleEndian.Uint32(raw[8:]))
		at = 12
	}
	codes, scales = raw[at:at+nc], raw[at+nc:at+nc+ns]
	for b := raw[at+nc+ns:]; len(b) >= 4; b = b[4:] {
		decoded = append(decoded, math.Float32frombits(binary.LittleEndian.Uint32(b)))
	}
	return
}

func mxInput(t *testing.T) (x []float32, rows, cols int) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir(), "mx", "input_b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rows, cols = int(binary.LittleEndian.Uint32(raw)), int(binary.LittleEndian.Uint32(raw[4:]))
	for b := raw[8:]; len(b) >= 4; b = b[4:] {
		x = append(x, math.Float32frombits(binary.LittleEndian.Uint32(b)))
	}
	return
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestMXMatchesTheReferenceFixtures(t *testing.T) {
	x, rows, cols := mxInput(t)
	names := map[MXElem]string{MXFP8E4M3: "mxfp8_e4m3", MXFP8E5M2: "mxfp8_e5m2", MXFP6E2M3: "mxfp6_e2m3",
		MXFP6E3M2: "mxfp6_e3m2", MXFP4E2M1: "mxfp4_e2m1", MXINT8: "mxint8"}
	for elem, name := range names {
		wantCodes, wantScales, _, wantY := mxFixture(t, name+"_b.bin", false)
		codes, scales, err := MXQuantize(elem, x, rows, cols)
		must(t, err)
		if !bytes.Equal(codes, wantCodes) || !bytes.Equal(scales, wantScales) {
			t.Errorf("%s: bytes differ from the fixture", name)
		}
		y, err := MXDequantize(elem, codes, scales, rows, cols)
		must(t, err)
		if !sameBits(y, wantY) {
			t.Errorf("%s: decoded values differ from the fixture", name)
		}
	}
	wantCodes, wantScales, wantG, wantY := mxFixture(t, "nvfp4_b.bin", true)
	q, err := NVFP4Quantize(x, rows, cols)
	must(t, err)
	if !bytes.Equal(q.Codes, wantCodes) || !bytes.Equal(q.Scales, wantScales) || q.GlobalScale != wantG {
		t.Errorf("nvfp4: differs from the fixture")
	}
	y, err := q.Dequantize(rows, cols)
	must(t, err)
	if !sameBits(y, wantY) {
		t.Errorf("nvfp4: decoded values differ from the fixture")
	}
	// Under a given global scale (a fused group's larger member): compressed-tensors' bytes.
	wantCodes, wantScales, g3, _ := mxFixture(t, "nvfp4_given3_b.bin", true)
	q3, err := NVFP4QuantizeWithGlobal(x, rows, cols, g3)
	must(t, err)
	if !bytes.Equal(q3.Codes, wantCodes) || !bytes.Equal(q3.Scales, wantScales) || q3.GlobalScale != g3 {
		t.Errorf("nvfp4 under a given global scale: differs from the fixture")
	}
	var amax float64
	for _, v := range x {
		amax = math.Max(amax, math.Abs(float64(v)))
	}
	if g, err := NVFP4GlobalScale(float32(amax)); err != nil || g != q.GlobalScale {
		t.Errorf("NVFP4GlobalScale = %v, %v; want %v", g, err, q.GlobalScale)
	}
	_, err = NVFP4GlobalScale(-1)
	expectErr(t, err, ErrInvalidArgument)
	_, err = NVFP4QuantizeWithGlobal(x, rows, cols, 0)
	expectErr(t, err, ErrInvalidArgument)
}

func TestMXSourcesAndErrors(t *testing.T) {
	rows, cols := 2, 40
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(i%9)*0.25 - 1
	}
	h, err := F32ToBF16(w)
	must(t, err)
	for _, elem := range []MXElem{MXFP8E4M3, MXFP6E3M2, MXFP4E2M1, MXINT8} {
		c1, s1, err := MXQuantize(elem, w, rows, cols)
		must(t, err)
		c2, s2, err := MXQuantize16(elem, DTypeBF16, h, rows, cols)
		must(t, err)
		if !bytes.Equal(c1, c2) || !bytes.Equal(s1, s2) {
			t.Errorf("elem %d: bf16 source differs", elem)
		}
	}
	q1, err := NVFP4Quantize(w, rows, cols)
	must(t, err)
	q2, err := NVFP4Quantize16(DTypeBF16, h, rows, cols)
	must(t, err)
	if !bytes.Equal(q1.Codes, q2.Codes) || !bytes.Equal(q1.Scales, q2.Scales) || q1.GlobalScale != q2.GlobalScale {
		t.Errorf("nvfp4: bf16 source differs")
	}
	if n, err := MXPackedSize(MXFP6E2M3, 3, 37); err != nil || n != 90 {
		t.Errorf("MXPackedSize = %d, %v", n, err)
	}
	_, err = MXPackedSize(MXElem(6), 3, 37)
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = MXQuantize(MXElem(-1), w, rows, cols)
	expectErr(t, err, ErrInvalidArgument)
	bad := append([]float32(nil), w...)
	bad[5] = float32(math.NaN())
	_, _, err = MXQuantize(MXFP4E2M1, bad, rows, cols)
	expectErr(t, err, ErrNonFinite)
	_, err = NVFP4Quantize(bad, rows, cols)
	expectErr(t, err, ErrNonFinite)
	_, _, err = MXQuantize(MXFP4E2M1, w, rows+1, cols)
	expectErr(t, err, ErrBufferTooSmall)
	codes, scales, err := MXQuantize(MXFP4E2M1, w, rows, cols)
	must(t, err)
	_, err = MXDequantize(MXFP4E2M1, codes[1:], scales, rows, cols)
	expectErr(t, err, ErrBufferTooSmall)
	q1.GlobalScale = 0
	_, err = q1.Dequantize(rows, cols)
	expectErr(t, err, ErrInvalidArgument)
	_, err = NVFP4Quantize16(DTypeF32, h, rows, cols)
	expectErr(t, err, ErrInvalidArgument)
}
