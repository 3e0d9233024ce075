package quant

import (
	"testing"
)

// A real layer: MiniLM layer 0's query projection (384 x 384) and its input activations.
func TestQuantizeRealLayer(t *testing.T) {
	const rows, cols, tokens = 384, 384, 256
	w := load(t, "encoder.layer.0.attention.self.query.weight", rows*cols)
	x := load(t, "x_calib.layer0.attn_in", tokens*cols)

	q8, err := Quantize(Int8(0), nil, w, rows, cols, nil)
	must(t, err)
	defer q8.Close()
	r, c, err := q8.Shape()
	must(t, err)
	if r != rows || c != cols {
		t.Fatalf("shape %d x %d", r, c)
	}
	if len(q8.Data()) != rows*cols || len(q8.Scales()) != rows || q8.ZeroPoints() != nil ||
		q8.InputScales() != nil || q8.GroupIndex() != nil {
		t.Errorf("INT8 parts: %d codes, %d scales", len(q8.Data()), len(q8.Scales()))
	}
	deq8, err := q8.Dequantize()
	must(t, err)
	e8 := outputError(x, tokens, w, deq8, rows, cols)

	q4, err := Quantize(Int4(128), nil, w, rows, cols, nil)
	must(t, err)
	defer q4.Close()
	if len(q4.Data()) != rows*cols/2 || len(q4.Scales()) != rows*3 || len(q4.ZeroPoints()) != rows*3 {
		t.Errorf("INT4 parts: %d codes, %d scales, %d zeros", len(q4.Data()), len(q4.Scales()), len(q4.ZeroPoints()))
	}
	deq4, err := q4.Dequantize()
	must(t, err)
	e4 := outputError(x, tokens, w, deq4, rows, cols)

	qf, err := Quantize(FP8(0), nil, w, 1, rows*cols, nil) // per tensor: one row
	must(t, err)
	defer qf.Close()
	deqf, err := qf.Dequantize()
	must(t, err)
	ef := outputError(x, tokens, w, deqf, rows, cols)
	t.Logf("layer 0 query, %d tokens: INT8/channel %.4e, INT4 g128 %.4e, FP8 per tensor %.4e", tokens, e8, e4, ef)
	// The published figures over 2048 tokens are 4.58e-5, 8.31e-3 and 5.25e-4.
	if !(e8 > 0 && e8 < 1e-4 && ef > e8 && ef < 1.5e-3 && e4 > ef && e4 < 2e-2) {
		t.Errorf("errors out of range: %v %v %v", e8, e4, ef)
	}

	m, err := q4.Method()
	must(t, err)
	if m != Int4(128) {
		t.Errorf("Method: %+v", m)
	}

	// Errors.
	small := make([]float32, rows*cols-1)
	small[0] = 42
	expectErr(t, q8.DequantizeInto(small), ErrBufferTooSmall)
	if small[0] != 42 {
		t.Error("written on error")
	}
	_, err = Quantize(Int8(0), nil, w, 0, cols, nil)
	expectErr(t, err, ErrInvalidArgument)
	_, err = Quantize(Int8(0), nil, w[:10], rows, cols, nil)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Quantize(GPTQ(4, 128), nil, w, rows, cols, nil) // GPTQ needs a calibration
	expectErr(t, err, ErrInvalidArgument)
	_, err = Quantize(Method{Kind: 77}, nil, w, rows, cols, nil)
	expectErr(t, err, ErrInvalidArgument)

	// A closed weight is a NULL handle to the library.
	must(t, q8.Close())
	must(t, q8.Close())
	_, _, err = q8.Shape()
	expectErr(t, err, ErrNullPointer)
	_, err = q8.Method()
	expectErr(t, err, ErrNullPointer)
	_, err = q8.Dequantize()
	expectErr(t, err, ErrNullPointer)
	if q8.Data() != nil || q8.Scales() != nil {
		t.Error("closed weight has data")
	}
}
