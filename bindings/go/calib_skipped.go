//go:build quant_skip_calib && !quant_skip_weight && !quant_skip_methods

package quant

// #include <quant.h>
import "C"

// Built only with the tag quant_skip_calib, against a development library that does not export
// the calibration functions yet: Quantize then takes nil for calib and opts.

// Calib is unavailable in this build.
type Calib struct{}

// Options is unavailable in this build.
type Options struct{}

func (c *Calib) handle() *C.quant_calib     { return nil }
func (o *Options) handle() *C.quant_options { return nil }
