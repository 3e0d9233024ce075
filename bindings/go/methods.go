package quant

/*
#include <stdlib.h>
#include <quant.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// MethodKind is a quantization method (quant_method_kind).
type MethodKind int32

// The method kinds of the C API.
const (
	KindInt8Symmetric  MethodKind = C.QUANT_INT8_SYMMETRIC
	KindInt4Asymmetric MethodKind = C.QUANT_INT4_ASYMMETRIC
	KindFP8E4M3        MethodKind = C.QUANT_FP8_E4M3
	KindAWQ            MethodKind = C.QUANT_AWQ
	KindSmoothQuant    MethodKind = C.QUANT_SMOOTHQUANT
	KindGPTQ           MethodKind = C.QUANT_GPTQ
)

// Method describes how to quantize a matrix (quant_method).
type Method struct {
	Kind      MethodKind
	Bits      uint32  // GPTQ: 2..8; AWQ: 4; ignored by the fixed-width kinds
	GroupSize uint32  // 0 = one scale per row; AWQ and GPTQ need > 0
	Alpha     float64 // SmoothQuant migration strength, 0..1
}

// Int8 is INT8 symmetric with a scale per row (groupSize 0) or per group.
func Int8(groupSize uint32) Method {
	return Method{Kind: KindInt8Symmetric, Bits: 8, GroupSize: groupSize}
}

// Int4 is INT4 asymmetric with integer zero points.
func Int4(groupSize uint32) Method {
	return Method{Kind: KindInt4Asymmetric, Bits: 4, GroupSize: groupSize}
}

// FP8 is FP8 E4M3 with a scale per row or group.
func FP8(groupSize uint32) Method { return Method{Kind: KindFP8E4M3, Bits: 8, GroupSize: groupSize} }

// AWQ is activation-aware weight quantization (needs a Calib).
func AWQ(bits, groupSize uint32) Method {
	return Method{Kind: KindAWQ, Bits: bits, GroupSize: groupSize}
}

// SmoothQuant is W8A8 SmoothQuant with migration strength alpha in [0, 1] (needs a Calib).
func SmoothQuant(alpha float64) Method { return Method{Kind: KindSmoothQuant, Bits: 8, Alpha: alpha} }

// GPTQ is GPTQ at 2..8 bits with groups of groupSize columns (needs a Calib).
func GPTQ(bits, groupSize uint32) Method {
	return Method{Kind: KindGPTQ, Bits: bits, GroupSize: groupSize}
}

func (m Method) c() C.quant_method {
	var cm C.quant_method
	cm.kind = C.quant_method_kind(m.Kind)
	cm.bits = C.uint32_t(m.Bits)
	cm.group_size = C.uint32_t(m.GroupSize)
	cm.alpha = C.double(m.Alpha)
	return cm
}

func methodFromC(cm C.quant_method) Method {
	return Method{Kind: MethodKind(cm.kind), Bits: uint32(cm.bits), GroupSize: uint32(cm.group_size), Alpha: float64(cm.alpha)}
}

// Validate checks the method's rules; the error's detail says which one is broken.
func (m Method) Validate() error {
	cm := m.c()
	return call("quant_method_validate", func() C.quant_status { return C.quant_method_validate(&cm) })
}

// BitsPerWeight is the nominal bits per weight.
func (m Method) BitsPerWeight() uint32 {
	cm := m.c()
	return uint32(C.quant_method_bits_per_weight(&cm))
}

// CompressionRatio is 16 / nominal bits.
func (m Method) CompressionRatio() float64 {
	cm := m.c()
	return float64(C.quant_method_compression_ratio(&cm))
}

// EffectiveBits is the bits per weight including scales and zero points, for rows of cols inputs.
func (m Method) EffectiveBits(cols int) float64 {
	cm := m.c()
	if cols < 0 {
		cols = 0
	}
	return float64(C.quant_method_effective_bits(&cm, C.size_t(cols)))
}

// Name is the method's display name, e.g. "GPTQ(4bit, group=128)".
func (m Method) Name() string {
	cm := m.c()
	n := C.quant_method_name(&cm, nil, 0)
	buf := make([]byte, int(n)+1)
	C.quant_method_name(&cm, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:n])
}

// String is Name.
func (m Method) String() string { return m.Name() }

// EstimateMemory gives the bytes of numParams weights in FP16 and with method m.
func EstimateMemory(numParams uint64, m Method) (fp16Bytes, quantBytes uint64, err error) {
	cm := m.c()
	var f, q C.size_t
	err = call("quant_estimate_memory", func() C.quant_status {
		return C.quant_estimate_memory(C.size_t(numParams), &cm, &f, &q)
	})
	return uint64(f), uint64(q), err
}

// Config is a default method plus per-layer overrides by layer name (quant_config).
type Config struct {
	p *C.quant_config
}

// NewConfig creates a configuration whose layers use def unless overridden.
func NewConfig(def Method) (*Config, error) {
	cm := def.c()
	var p *C.quant_config
	if err := call("quant_config_new", func() C.quant_status { return C.quant_config_new(&cm, &p) }); err != nil {
		return nil, err
	}
	c := &Config{p: p}
	runtime.SetFinalizer(c, (*Config).Close)
	return c, nil
}

// SetLayer uses m for the layer called name (UTF-8, no NUL).
func (c *Config) SetLayer(name string, m Method) error {
	const fn = "quant_config_set_layer"
	cname, err := cstring(fn, "layer name", name)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cname))
	cm := m.c()
	err = call(fn, func() C.quant_status { return C.quant_config_set_layer(c.p, cname, &cm) })
	runtime.KeepAlive(c)
	return err
}

// MethodForLayer is the layer's override, or the default method.
func (c *Config) MethodForLayer(name string) (Method, error) {
	const fn = "quant_config_method_for_layer"
	cname, err := cstring(fn, "layer name", name)
	if err != nil {
		return Method{}, err
	}
	defer C.free(unsafe.Pointer(cname))
	var out C.quant_method
	err = call(fn, func() C.quant_status { return C.quant_config_method_for_layer(c.p, cname, &out) })
	runtime.KeepAlive(c)
	if err != nil {
		return Method{}, err
	}
	return methodFromC(out), nil
}

// Validate checks every method of the configuration; the detail names the first bad layer.
func (c *Config) Validate() error {
	err := call("quant_config_validate", func() C.quant_status { return C.quant_config_validate(c.p) })
	runtime.KeepAlive(c)
	return err
}

// Close frees the configuration; later calls on it fail with ErrNullPointer. Close is idempotent.
func (c *Config) Close() error {
	if c.p != nil {
		C.quant_config_free(c.p)
		c.p = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}
