package quant

import "testing"

func TestLevels(t *testing.T) {
	cases := []struct {
		l      Level
		bits   uint32
		factor float64
		name   string
	}{
		{LevelFP32, 32, 1, "FP32"}, {LevelFP16, 16, 2, "FP16"}, {LevelBF16, 16, 2, "BF16"},
		{LevelINT8, 8, 4, "INT8"}, {LevelINT4, 4, 8, "INT4"},
	}
	for _, c := range cases {
		if c.l.Bits() != c.bits || c.l.ReductionFactor() != c.factor || c.l.Name() != c.name || c.l.String() != c.name {
			t.Errorf("%v: bits %d factor %v name %q", c.l, c.l.Bits(), c.l.ReductionFactor(), c.l.Name())
		}
	}
	unknown := Level(99)
	if unknown.Bits() != 0 || unknown.ReductionFactor() != 0 || unknown.Name() != "" || unknown.String() != "Level(99)" {
		t.Errorf("unknown level: %d %v %q", unknown.Bits(), unknown.ReductionFactor(), unknown.Name())
	}
	for bits, want := range map[uint32]Level{32: LevelFP32, 16: LevelFP16, 8: LevelINT8, 4: LevelINT4} {
		l, err := LevelFromBits(bits)
		if err != nil || l != want {
			t.Errorf("LevelFromBits(%d) = %v, %v", bits, l, err)
		}
	}
	_, err := LevelFromBits(7)
	expectErr(t, err, ErrInvalidArgument)
}
