package quant

import (
	"math"
	"reflect"
	"testing"
)

func TestCalibAndOptions(t *testing.T) {
	const cols = 8
	c, err := NewCalib(cols)
	must(t, err)
	defer c.Close()
	if c.Cols() != cols || c.Tokens() != 0 {
		t.Fatalf("new calib: cols %d tokens %d", c.Cols(), c.Tokens())
	}
	x := testMatrix(5, cols)
	must(t, c.Add(x))
	must(t, c.AddTokens(x[:2*cols], 2, cols))
	if c.Tokens() != 7 {
		t.Errorf("tokens %d", c.Tokens())
	}
	expectErr(t, c.Add(x[:cols+1]), ErrShapeMismatch)
	expectErr(t, c.AddTokens(x, 2, cols+1), ErrShapeMismatch)
	expectErr(t, c.AddTokens(x, 6, cols), ErrBufferTooSmall)
	bad := append([]float32(nil), x...)
	bad[3] = float32(nan())
	expectErr(t, c.Add(bad), ErrNonFinite)
	if c.Tokens() != 7 {
		t.Errorf("tokens changed on error: %d", c.Tokens())
	}
	if n, err := RecommendedTokens(KindGPTQ, 512); err != nil || n != 8192 {
		t.Errorf("GPTQ on 512 columns: %d tokens recommended (%v)", n, err)
	}
	if n, err := RecommendedTokens(KindAWQ, 4096); err != nil || n != 512 {
		t.Errorf("AWQ: %d tokens recommended (%v)", n, err)
	}
	if n, err := RecommendedTokens(KindInt4Asymmetric, 4096); err != nil || n != 0 {
		t.Errorf("INT4: %d tokens recommended (%v)", n, err)
	}
	_, err = RecommendedTokens(MethodKind(6), 64)
	expectErr(t, err, ErrInvalidArgument)
	_, err = RecommendedTokens(KindGPTQ, 0)
	expectErr(t, err, ErrInvalidArgument)
	_, err = NewCalib(0)
	expectErr(t, err, ErrInvalidArgument)
	_, err = NewCalib(-3)
	expectErr(t, err, ErrInvalidArgument)

	o, err := NewOptions()
	must(t, err)
	defer o.Close()
	must(t, o.SetActOrder(true))
	must(t, o.SetDampPercent(0.05))
	must(t, o.SetBlockSize(64))
	must(t, o.SetSymmetric(true))
	must(t, o.SetStaticGroups(true))
	must(t, o.SetMSESearch(true))
	must(t, o.SetSampleTokens(128))
	must(t, o.SetThreads(1))
	expectErr(t, o.SetDampPercent(-1), ErrInvalidArgument)
	expectErr(t, o.SetBlockSize(0), ErrInvalidArgument)
	expectErr(t, o.SetBlockSize(-1), ErrInvalidArgument)
	expectErr(t, o.SetSampleTokens(0), ErrInvalidArgument)
	expectErr(t, o.SetThreads(-1), ErrInvalidArgument)
	must(t, o.Close())
	expectErr(t, o.SetActOrder(true), ErrNullPointer)
	expectErr(t, o.SetSymmetric(true), ErrNullPointer)
	expectErr(t, o.SetStaticGroups(true), ErrNullPointer)
	expectErr(t, o.SetMSESearch(true), ErrNullPointer)
	must(t, c.Close())
	expectErr(t, c.Add(x), ErrNullPointer)
	if c.Tokens() != 0 {
		t.Error("closed calib has tokens")
	}
}

// GPTQ, AWQ and SmoothQuant on real layers of MiniLM layer 5, calibrated on the first 1024 tokens
// and measured on the next 256.
func TestCalibratedRealLayers(t *testing.T) {
	const rows, cols, calibTokens, testTokens = 384, 384, 1024, 256
	wq := load(t, "encoder.layer.5.attention.self.query.weight", rows*cols)
	wv := load(t, "encoder.layer.5.attention.self.value.weight", rows*cols)
	x := load(t, "x_calib.layer5.attn_in", (calibTokens+testTokens)*cols)
	test := x[calibTokens*cols:]

	c, err := NewCalib(cols)
	must(t, err)
	defer c.Close()
	must(t, c.Add(x[:calibTokens*cols]))

	rtn, err := Quantize(Int4(128), nil, wq, rows, cols, nil)
	must(t, err)
	defer rtn.Close()
	deq, err := rtn.Dequantize()
	must(t, err)
	eRTN := outputError(test, testTokens, wq, deq, rows, cols)

	o, err := NewOptions()
	must(t, err)
	defer o.Close()
	must(t, o.SetActOrder(true))
	must(t, o.SetSampleTokens(256))
	g, err := Quantize(GPTQ(4, 128), o, wq, rows, cols, c)
	must(t, err)
	defer g.Close()
	if len(g.GroupIndex()) != cols {
		t.Errorf("act-order GPTQ: g_idx has %d entries", len(g.GroupIndex()))
	}
	deq, err = g.Dequantize()
	must(t, err)
	eGPTQ := outputError(test, testTokens, wq, deq, rows, cols)

	a, err := Quantize(AWQ(4, 128), nil, wq, rows, cols, c)
	must(t, err)
	defer a.Close()
	if len(a.InputScales()) != cols {
		t.Errorf("AWQ: %d input scales", len(a.InputScales()))
	}
	deq, err = a.Dequantize()
	must(t, err)
	eAWQ := outputError(test, testTokens, wq, deq, rows, cols)
	t.Logf("layer 5 query, held-out tokens: RTN INT4 g128 %.4e, GPTQ %.4e, AWQ %.4e", eRTN, eGPTQ, eAWQ)
	if !(eGPTQ < eRTN && eAWQ < eRTN) {
		t.Errorf("calibrated methods do not beat RTN: RTN %v GPTQ %v AWQ %v", eRTN, eGPTQ, eAWQ)
	}

	// q and v read the same input: one AWQ input scale for both.
	ws, err := QuantizeGroup(AWQ(4, 128), nil, [][]float32{wq, wv}, []int{rows, rows}, cols, c)
	must(t, err)
	if len(ws) != 2 || !reflect.DeepEqual(ws[0].InputScales(), ws[1].InputScales()) || len(ws[0].InputScales()) != cols {
		t.Errorf("QuantizeGroup: input scales differ")
	}
	for _, w := range ws {
		w.Close()
	}
	sq, err := QuantizeGroup(SmoothQuant(0.5), nil, [][]float32{wq, wv}, []int{rows, rows}, cols, c)
	must(t, err)
	if !reflect.DeepEqual(sq[0].InputScales(), sq[1].InputScales()) || len(sq[1].Scales()) != rows {
		t.Errorf("SmoothQuant group: input scales differ")
	}
	sq[0].Close()
	// sq[1] is left to its finalizer.

	// A calibration without the Hessian serves AWQ, not GPTQ; SetHessian gives it one.
	const nh = 256
	light, err := NewCalibEx(cols, 0, o)
	must(t, err)
	defer light.Close()
	must(t, light.Add(x[:nh*cols]))
	_, err = Quantize(GPTQ(4, 128), nil, wq, rows, cols, light)
	expectErr(t, err, ErrInvalidArgument)
	h := make([]float64, cols*cols)
	for tok := 0; tok < nh; tok++ {
		xt := x[tok*cols : (tok+1)*cols]
		for i := 0; i < cols; i++ {
			for j := 0; j <= i; j++ {
				h[i*cols+j] += 2 * float64(xt[i]) * float64(xt[j]) / nh
			}
		}
	}
	expectErr(t, light.SetHessian(h[:len(h)-1], cols, nh), ErrBufferTooSmall)
	expectErr(t, light.SetHessian(h, cols+1, nh), ErrShapeMismatch)
	expectErr(t, light.SetHessian(h, cols, 0), ErrInvalidArgument)
	must(t, light.SetHessian(h, cols, nh))
	lg, err := Quantize(GPTQ(4, 128), nil, wq, rows, cols, light)
	must(t, err)
	defer lg.Close()
	full, err := NewCalibEx(cols, CalibHessian, nil)
	must(t, err)
	defer full.Close()
	must(t, full.Add(x[:nh*cols]))
	fg, err := Quantize(GPTQ(4, 128), nil, wq, rows, cols, full)
	must(t, err)
	defer fg.Close()
	dl, err := lg.Dequantize()
	must(t, err)
	df, err := fg.Dequantize()
	must(t, err)
	el, ef := outputError(test, testTokens, wq, dl, rows, cols), outputError(test, testTokens, wq, df, rows, cols)
	if math.Abs(el-ef) > 0.01*ef {
		t.Errorf("GPTQ with a Hessian from outside %v, accumulated %v", el, ef)
	}
	_, err = NewCalibEx(cols, 0x80, nil)
	expectErr(t, err, ErrInvalidArgument)

	// W8A8: per-token INT8 activations of x / s times the SmoothQuant weight, exact against int32 sums.
	const m = 16
	sw, err := Quantize(SmoothQuant(0.5), nil, wq, rows, cols, c)
	must(t, err)
	defer sw.Close()
	acodes, ascales, err := QuantizeActivations(test[:m*cols], m, cols, sw.InputScales())
	must(t, err)
	b, bs := sw.Int8Data(), sw.Scales()
	y, err := Int8GEMM(acodes, ascales, b, bs, m, rows, cols)
	must(t, err)
	var num, den float64
	for i := 0; i < m; i++ {
		for j := 0; j < rows; j++ {
			var acc int32
			var ref float64
			for l := 0; l < cols; l++ {
				acc += int32(acodes[i*cols+l]) * int32(b[j*cols+l])
				ref += float64(test[i*cols+l]) * float64(wq[j*cols+l])
			}
			if want := (float32(acc) * ascales[i]) * bs[j]; y[i*rows+j] != want {
				t.Fatalf("Int8GEMM[%d][%d] = %v, want %v", i, j, y[i*rows+j], want)
			}
			d := float64(y[i*rows+j]) - ref
			num += d * d
			den += ref * ref
		}
	}
	t.Logf("SmoothQuant W8A8, %d tokens: relative output error %.4e", m, num/den)
	if num/den > 1e-2 {
		t.Errorf("W8A8 error %v", num/den)
	}
	_, _, err = QuantizeActivations(test, m, cols, sw.InputScales()[:cols-1])
	expectErr(t, err, ErrBufferTooSmall)
	_, _, err = QuantizeActivations(test, m, cols, make([]float32, cols))
	expectErr(t, err, ErrInvalidArgument)
	_, _, err = QuantizeActivations(test[:10], m, cols, nil)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int8GEMM(acodes, ascales, b, bs, m, rows, 0)
	expectErr(t, err, ErrInvalidArgument)
	_, err = Int8GEMM(acodes, ascales, b, bs, m+1, rows, cols)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int8GEMM(acodes, ascales[:m-1], b, bs, m, rows, cols)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = Int8GEMM(acodes, ascales, b, bs, m, -1, cols)
	expectErr(t, err, ErrInvalidArgument)

	// Errors.
	other, err := NewCalib(cols + 1)
	must(t, err)
	defer other.Close()
	_, err = Quantize(AWQ(4, 128), nil, wq, rows, cols, other)
	expectErr(t, err, ErrShapeMismatch)
	empty, err := NewCalib(cols)
	must(t, err)
	defer empty.Close()
	_, err = Quantize(GPTQ(4, 128), nil, wq, rows, cols, empty)
	expectErr(t, err, ErrInvalidArgument)
	_, err = QuantizeGroup(AWQ(4, 128), nil, nil, nil, cols, c)
	expectErr(t, err, ErrInvalidArgument)
	_, err = QuantizeGroup(AWQ(4, 128), nil, [][]float32{wq, nil}, []int{rows, rows}, cols, c)
	expectErr(t, err, ErrBufferTooSmall)
	_, err = QuantizeGroup(AWQ(4, 128), nil, [][]float32{wq}, []int{rows, rows}, cols, c)
	expectErr(t, err, ErrShapeMismatch)
	_, err = QuantizeGroup(AWQ(4, 128), nil, [][]float32{wq}, []int{rows}, -1, c)
	expectErr(t, err, ErrInvalidArgument)
}

func TestSmoothScales(t *testing.T) {
	s, err := SmoothScales([]float32{1, 4}, []float32{4, 1}, 0.5)
	must(t, err)
	if math.Abs(float64(s[0]-2)) > 1e-6 || math.Abs(float64(s[1]-0.5)) > 1e-6 {
		t.Errorf("SmoothScales: %v", s)
	}
	_, err = SmoothScales([]float32{1, 4}, []float32{4, 1}, 1.5)
	expectErr(t, err, ErrInvalidArgument)
	_, err = SmoothScales([]float32{1, 4}, []float32{4}, 0.5)
	expectErr(t, err, ErrShapeMismatch)
}
