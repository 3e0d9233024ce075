package quant

// #include <quant.h>
import "C"

import "runtime"

// Calib accumulates the activation statistics of one layer input of width cols (quant_calib), for
// the calibrated methods (AWQ, SmoothQuant, GPTQ). Add may be called any number of times.
type Calib struct {
	p    *C.quant_calib
	cols int
}

// NewCalib creates an empty calibration for inputs of width cols.
func NewCalib(cols int) (*Calib, error) {
	const fn = "quant_calib_new"
	cc, err := size(fn, "cols", cols)
	if err != nil {
		return nil, err
	}
	var p *C.quant_calib
	if err := call(fn, func() C.quant_status { return C.quant_calib_new(cc, &p) }); err != nil {
		return nil, err
	}
	c := &Calib{p: p, cols: cols}
	runtime.SetFinalizer(c, (*Calib).Close)
	return c, nil
}

// CalibHessian is the flag of NewCalibEx that accumulates the GPTQ Hessian.
const CalibHessian uint32 = C.QUANT_CALIB_HESSIAN

// NewCalibEx creates an empty calibration choosing what it accumulates: flags 0 (no Hessian: O(cols)
// memory, enough for AWQ and SmoothQuant; GPTQ rejects it) or CalibHessian. opts (may be nil) gives
// sample_tokens and threads.
func NewCalibEx(cols int, flags uint32, opts *Options) (*Calib, error) {
	const fn = "quant_calib_new_ex"
	cc, err := size(fn, "cols", cols)
	if err != nil {
		return nil, err
	}
	var p *C.quant_calib
	err = call(fn, func() C.quant_status { return C.quant_calib_new_ex(cc, C.uint32_t(flags), opts.handle(), &p) })
	runtime.KeepAlive(opts)
	if err != nil {
		return nil, err
	}
	c := &Calib{p: p, cols: cols}
	runtime.SetFinalizer(c, (*Calib).Close)
	return c, nil
}

// SetHessian replaces the calibration's Hessian by h (row-major cols x cols, H = (2/n) sum x x^T over
// nTokens tokens, accumulated elsewhere; only the lower triangle is read).
func (c *Calib) SetHessian(h []float64, cols int, nTokens uint64) error {
	const fn = "quant_calib_set_hessian"
	cc, err := size(fn, "cols", cols)
	if err != nil {
		return err
	}
	err = call(fn, func() C.quant_status {
		return C.quant_calib_set_hessian(c.p, (*C.double)(ptr(h)), C.size_t(len(h)), cc, C.uint64_t(nTokens))
	})
	runtime.KeepAlive(c)
	return err
}

// Cols is the input width.
func (c *Calib) Cols() int { return c.cols }

// Add adds len(x) / Cols() tokens: x is row-major n_tokens x cols, and its length must be a
// multiple of Cols() (else ErrShapeMismatch).
func (c *Calib) Add(x []float32) error {
	if c.cols == 0 || len(x)%c.cols != 0 {
		return fail(StatusShapeMismatch, "quant_calib_add", "x holds %d floats, not a multiple of cols = %d", len(x), c.cols)
	}
	return c.AddTokens(x, len(x)/c.cols, c.cols)
}

// AddTokens adds nTokens x cols activations; cols must equal the calibration's width (else
// ErrShapeMismatch), and x must hold nTokens * cols floats.
func (c *Calib) AddTokens(x []float32, nTokens, cols int) error {
	const fn = "quant_calib_add"
	n, k, _, err := dims(fn, len(x), nTokens, cols, 0)
	if err != nil {
		return err
	}
	err = call(fn, func() C.quant_status { return C.quant_calib_add(c.p, (*C.float)(ptr(x)), n, k) })
	runtime.KeepAlive(c)
	return err
}

// RecommendedTokens is how many calibration tokens the method kind should be fitted on for a layer
// with cols input columns (quant_calib_recommended_tokens): 0 for round-to-nearest, 16*cols for GPTQ
// (fewer than a few times cols overfit and can lose to round-to-nearest), 512 for AWQ and
// SmoothQuant. Compare it with Tokens.
func RecommendedTokens(kind MethodKind, cols int) (uint64, error) {
	const fn = "quant_calib_recommended_tokens"
	n, err := size(fn, "cols", cols)
	if err != nil {
		return 0, err
	}
	var tokens C.uint64_t
	if err := call(fn, func() C.quant_status {
		return C.quant_calib_recommended_tokens(C.quant_method_kind(kind), n, &tokens)
	}); err != nil {
		return 0, err
	}
	return uint64(tokens), nil
}

// Tokens is the number of tokens added so far.
func (c *Calib) Tokens() uint64 {
	n := uint64(C.quant_calib_tokens(c.p))
	runtime.KeepAlive(c)
	return n
}

// Close frees the calibration; it is idempotent.
func (c *Calib) Close() error {
	if c.p != nil {
		C.quant_calib_free(c.p)
		c.p = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

func (c *Calib) handle() *C.quant_calib {
	if c == nil {
		return nil
	}
	return c.p
}

// Options holds the optional knobs of the methods (quant_options). A nil *Options means the
// defaults everywhere. Every setter rejects a bad value with ErrInvalidArgument.
type Options struct {
	p *C.quant_options
}

// NewOptions creates options with the published defaults.
func NewOptions() (*Options, error) {
	var p *C.quant_options
	if err := call("quant_options_new", func() C.quant_status { return C.quant_options_new(&p) }); err != nil {
		return nil, err
	}
	o := &Options{p: p}
	runtime.SetFinalizer(o, (*Options).Close)
	return o, nil
}

func (o *Options) set(fn string, f func(p *C.quant_options) C.quant_status) error {
	err := call(fn, func() C.quant_status { return f(o.p) })
	runtime.KeepAlive(o)
	return err
}

// SetActOrder makes GPTQ process columns by decreasing Hessian diagonal (the result keeps g_idx).
func (o *Options) SetActOrder(on bool) error {
	return o.set("quant_options_set_act_order", func(p *C.quant_options) C.quant_status {
		return C.quant_options_set_act_order(p, C.bool(on))
	})
}

// SetDampPercent sets GPTQ's damping as a fraction of the mean Hessian diagonal (default 0.01).
func (o *Options) SetDampPercent(v float64) error {
	return o.set("quant_options_set_damp_percent", func(p *C.quant_options) C.quant_status {
		return C.quant_options_set_damp_percent(p, C.double(v))
	})
}

// SetBlockSize sets GPTQ's columns per lazy block update (default 128).
func (o *Options) SetBlockSize(v int) error {
	const fn = "quant_options_set_block_size"
	n, err := size(fn, "block_size", v)
	if err != nil {
		return err
	}
	return o.set(fn, func(p *C.quant_options) C.quant_status { return C.quant_options_set_block_size(p, n) })
}

// SetSymmetric makes GPTQ/AWQ use symmetric codes instead of zero points.
func (o *Options) SetSymmetric(on bool) error {
	return o.set("quant_options_set_symmetric", func(p *C.quant_options) C.quant_status {
		return C.quant_options_set_symmetric(p, C.bool(on))
	})
}

// SetStaticGroups makes GPTQ with act-order compute every group's scale from the original weights.
func (o *Options) SetStaticGroups(on bool) error {
	return o.set("quant_options_set_static_groups", func(p *C.quant_options) C.quant_status {
		return C.quant_options_set_static_groups(p, C.bool(on))
	})
}

// SetMSESearch makes GPTQ search a shrink grid for each group's scale.
func (o *Options) SetMSESearch(on bool) error {
	return o.set("quant_options_set_mse_search", func(p *C.quant_options) C.quant_status {
		return C.quant_options_set_mse_search(p, C.bool(on))
	})
}

// SetSampleTokens sets the tokens a calibration keeps for AWQ's searches (default 512).
func (o *Options) SetSampleTokens(v int) error {
	const fn = "quant_options_set_sample_tokens"
	n, err := size(fn, "sample_tokens", v)
	if err != nil {
		return err
	}
	return o.set(fn, func(p *C.quant_options) C.quant_status { return C.quant_options_set_sample_tokens(p, n) })
}

// SetThreads sets the worker threads of GPTQ, AWQ and the Hessian: 0 means all cores, at most
// MaxThreads, default 1 (the rule of SetThreads for the kernels too).
func (o *Options) SetThreads(v int) error {
	const fn = "quant_options_set_threads"
	n, err := size(fn, "threads", v)
	if err != nil {
		return err
	}
	return o.set(fn, func(p *C.quant_options) C.quant_status { return C.quant_options_set_threads(p, n) })
}

// Close frees the options; it is idempotent.
func (o *Options) Close() error {
	if o.p != nil {
		C.quant_options_free(o.p)
		o.p = nil
		runtime.SetFinalizer(o, nil)
	}
	return nil
}

func (o *Options) handle() *C.quant_options {
	if o == nil {
		return nil
	}
	return o.p
}

// SmoothScales computes SmoothQuant's s_j = actAbsmax_j^alpha / weightAbsmax_j^(1-alpha).
func SmoothScales(weightAbsmax, actAbsmax []float32, alpha float64) ([]float32, error) {
	const fn = "quant_smooth_scales"
	if len(weightAbsmax) != len(actAbsmax) {
		return nil, fail(StatusShapeMismatch, fn, "weightAbsmax (%d) and actAbsmax (%d) differ in length",
			len(weightAbsmax), len(actAbsmax))
	}
	out := make([]float32, len(weightAbsmax))
	err := call(fn, func() C.quant_status {
		return C.quant_smooth_scales((*C.float)(ptr(weightAbsmax)), (*C.float)(ptr(actAbsmax)), C.size_t(len(out)),
			C.double(alpha), (*C.float)(ptr(out)))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QuantizeActivations quantizes activations per token to INT8, as a W8A8 engine runs a SmoothQuant
// layer: v = x / inputScales (nil: no division), token scale = max|v| / 127. x is nTokens x cols.
func QuantizeActivations(x []float32, nTokens, cols int, inputScales []float32) (codes []int8, tokenScales []float32, err error) {
	const fn = "quant_quantize_activations"
	n, c, _, err := dims(fn, len(x), nTokens, cols, 0)
	if err != nil {
		return nil, nil, err
	}
	if inputScales != nil {
		if err := need(fn, "inputScales", len(inputScales), uint64(cols)); err != nil {
			return nil, nil, err
		}
	}
	codes = make([]int8, nTokens*cols)
	tokenScales = make([]float32, nTokens)
	err = call(fn, func() C.quant_status {
		return C.quant_quantize_activations((*C.float)(ptr(x)), n, c, (*C.float)(ptr(inputScales)),
			(*C.int8_t)(ptr(codes)), C.size_t(len(codes)), (*C.float)(ptr(tokenScales)), C.size_t(len(tokenScales)))
	})
	if err != nil {
		return nil, nil, err
	}
	return codes, tokenScales, nil
}

// Int8GEMM computes out (m x n) = (a . b^T, exact in int32) * aScales[i] * bScales[j], for a (m x k)
// and b (n x k) INT8 matrices (b: the Int8Data of an INT8 or SmoothQuant weight).
func Int8GEMM(a []int8, aScales []float32, b []int8, bScales []float32, m, n, k int) ([]float32, error) {
	const fn = "quant_int8_gemm"
	cm, cn, ck, err := shape(fn, m, n, k)
	if err != nil {
		return nil, err
	}
	for _, chk := range []struct {
		what string
		have int
		n    uint64
	}{{"a", len(a), product(m, k)}, {"b", len(b), product(n, k)}, {"aScales", len(aScales), uint64(m)}, {"bScales", len(bScales), uint64(n)}} {
		if chk.n != ^uint64(0) {
			if err := need(fn, chk.what, chk.have, chk.n); err != nil {
				return nil, err
			}
		}
	}
	if product(m, n) > uint64(maxInt) {
		return nil, fail(StatusInvalidArgument, fn, "%d x %d overflows", m, n)
	}
	out := make([]float32, m*n)
	err = call(fn, func() C.quant_status {
		return C.quant_int8_gemm((*C.int8_t)(ptr(a)), (*C.float)(ptr(aScales)), (*C.int8_t)(ptr(b)), (*C.float)(ptr(bScales)),
			cm, cn, ck, (*C.float)(ptr(out)), C.size_t(len(out)))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
