package quant

import (
	"runtime"
	"strings"
	"testing"
)

func TestMethods(t *testing.T) {
	g := GPTQ(4, 128)
	must(t, g.Validate())
	if g.Name() != "GPTQ(4bit, group=128)" || g.String() != g.Name() {
		t.Errorf("name %q", g.Name())
	}
	if g.BitsPerWeight() != 4 || g.CompressionRatio() != 4 || g.EffectiveBits(4096) <= 4 {
		t.Errorf("GPTQ bits %d ratio %v effective %v", g.BitsPerWeight(), g.CompressionRatio(), g.EffectiveBits(4096))
	}
	for _, m := range []Method{Int8(0), Int8(64), Int4(128), FP8(0), AWQ(4, 128), SmoothQuant(0.5)} {
		must(t, m.Validate())
		if m.Name() == "" || m.BitsPerWeight() == 0 || m.CompressionRatio() <= 0 || m.EffectiveBits(-1) < 0 {
			t.Errorf("%+v: name %q bits %d", m, m.Name(), m.BitsPerWeight())
		}
	}
	expectErr(t, GPTQ(9, 128).Validate(), ErrInvalidArgument)
	expectErr(t, SmoothQuant(1.5).Validate(), ErrInvalidArgument)
	expectErr(t, Method{Kind: 42}.Validate(), ErrInvalidArgument)

	fp16, q, err := EstimateMemory(1000, Int8(0))
	must(t, err)
	if fp16 != 2000 || q == 0 || q >= fp16 {
		t.Errorf("EstimateMemory: %d %d", fp16, q)
	}
	_, _, err = EstimateMemory(1000, Method{Kind: 42})
	expectErr(t, err, ErrInvalidArgument)
}

func TestConfig(t *testing.T) {
	c, err := NewConfig(Int8(0))
	must(t, err)
	defer c.Close()
	must(t, c.SetLayer("lm_head", FP8(0)))
	m, err := c.MethodForLayer("lm_head")
	must(t, err)
	if m.Kind != KindFP8E4M3 {
		t.Errorf("lm_head: %+v", m)
	}
	m, err = c.MethodForLayer("encoder.layer.0.attention.self.query")
	must(t, err)
	if m != Int8(0) {
		t.Errorf("default: %+v", m)
	}
	must(t, c.Validate())
	expectErr(t, c.SetLayer("bad\x00name", Int8(0)), ErrInvalidArgument)
	expectErr(t, c.SetLayer("bad\xffutf8", Int8(0)), ErrInvalidArgument) // checked by the library
	_, err = c.MethodForLayer("bad\x00name")
	expectErr(t, err, ErrInvalidArgument)
	must(t, c.SetLayer("bad.layer", GPTQ(4, 0)))
	err = c.Validate()
	expectErr(t, err, ErrInvalidArgument)
	if !strings.Contains(err.(*Error).Detail, "bad.layer") {
		t.Errorf("detail does not name the layer: %v", err)
	}
	_, err = NewConfig(Method{Kind: 42}) // an unknown kind; values are checked by Validate
	expectErr(t, err, ErrInvalidArgument)

	// Close is idempotent; a closed handle is a NULL handle to the library.
	must(t, c.Close())
	must(t, c.Close())
	expectErr(t, c.Validate(), ErrNullPointer)
}

// An unclosed handle is freed by its finalizer (no crash, no double free after Close).
func TestFinalizers(t *testing.T) {
	for i := 0; i < 100; i++ {
		c, err := NewConfig(Int4(128))
		must(t, err)
		if i%2 == 0 {
			c.Close()
		}
	}
	runtime.GC()
	runtime.GC()
}
