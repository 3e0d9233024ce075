package quant

import (
	"reflect"
	"runtime"
	"testing"
)

func TestSimdLevelAndThreads(t *testing.T) {
	if SimdLevelName(SimdLevel()) == "" {
		t.Fatal("the current SIMD level has no name")
	}
	if err := SetSimdLevel(SimdScalar); err != nil {
		t.Fatal(err)
	}
	if SimdLevel() != SimdScalar {
		t.Fatal("the scalar level was not forced")
	}
	if err := SetSimdLevel(SimdAuto); err != nil {
		t.Fatal(err)
	}
	if err := SetSimdLevel(42); err == nil {
		t.Fatal("an unknown level was accepted")
	}
	if SimdLevelName(42) != "" {
		t.Fatal("an unknown level has a name")
	}
	if err := SetThreads(2); err != nil || Threads() != 2 {
		t.Fatal("SetThreads(2) did not take")
	}
	if err := SetThreads(1 << 20); err == nil {
		t.Fatal("too many threads were accepted")
	}
	if err := SetThreads(1); err != nil {
		t.Fatal(err)
	}
}

// Every SIMD level and thread count gives the same codes; failed settings change nothing.
func TestSimdThreadsSameResults(t *testing.T) {
	start := SimdLevel()
	name := SimdLevelName(start)
	t.Logf("SIMD level %s, threads %d", name, Threads())
	if name != "scalar" && name != "avx2" && name != "avx512" && name != "neon" {
		t.Errorf("level name %q", name)
	}
	for l, want := range map[int32]string{SimdScalar: "scalar", SimdAVX2: "avx2", SimdAVX512: "avx512", SimdNEON: "neon", SimdAuto: ""} {
		if got := SimdLevelName(l); got != want {
			t.Errorf("SimdLevelName(%d) = %q", l, got)
		}
	}
	const rows, cols = 512, 384 // 196608 values: enough for two threads
	w := load(t, "encoder.layer.0.intermediate.dense.weight", rows*cols)
	c0, s0, z0, err := Int4Quantize(w, rows, cols, 128)
	must(t, err)
	same := func(what string) {
		t.Helper()
		c, s, z, err := Int4Quantize(w, rows, cols, 128)
		must(t, err)
		if !reflect.DeepEqual(c, c0) || !reflect.DeepEqual(s, s0) || !reflect.DeepEqual(z, z0) {
			t.Errorf("%s: INT4 codes differ", what)
		}
	}
	must(t, SetSimdLevel(SimdScalar))
	defer SetSimdLevel(SimdAuto)
	same("scalar")
	expectErr(t, SetSimdLevel(7), ErrInvalidArgument)
	switch runtime.GOARCH {
	case "amd64":
		expectErr(t, SetSimdLevel(SimdNEON), ErrUnsupported)
	case "arm64":
		expectErr(t, SetSimdLevel(SimdAVX2), ErrUnsupported)
	}
	if SimdLevel() != SimdScalar {
		t.Error("a failed SetSimdLevel changed the level")
	}
	must(t, SetSimdLevel(SimdAuto))
	if SimdLevel() != start {
		t.Errorf("SimdAuto gives %d, started at %d", SimdLevel(), start)
	}

	before := Threads()
	defer SetThreads(before)
	must(t, SetThreads(2))
	same("2 threads")
	expectErr(t, SetThreads(MaxThreads+1), ErrInvalidArgument)
	if Threads() != 2 {
		t.Error("a failed SetThreads changed the count")
	}
}
