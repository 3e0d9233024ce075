package quant

import "testing"

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
