//go:build !quant_skip_calib

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

// SetThreads sets the worker threads; 0 means all cores.
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
