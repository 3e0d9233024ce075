package quant

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// expectErr checks that err is a *Error with the sentinel's status and a non-empty detail.
func expectErr(t *testing.T, err error, want *Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected %v, got no error", want.Status)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("expected *quant.Error, got %T: %v", err, err)
	}
	if !errors.Is(err, want) || e.Status != want.Status {
		t.Fatalf("expected status %v, got %v", want.Status, err)
	}
	if e.Detail == "" || e.Func == "" {
		t.Fatalf("error without detail or function: %#v", e)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dataDir is the repository's tests/data (or $QUANT_TEST_DATA_DIR).
func dataDir() string {
	if d := os.Getenv("QUANT_TEST_DATA_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "tests", "data")
}

// load reads n little-endian float32 from tests/data/minilm/<name>.f32.
func load(t *testing.T, name string, n int) []float32 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir(), "minilm", name+".f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 4*n {
		t.Fatalf("%s: %d bytes, need %d", name, len(raw), 4*n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// outputError is ||X W^T - X Q^T||^2 / ||X W^T||^2 over the first n tokens of x.
func outputError(x []float32, n int, w, q []float32, rows, cols int) float64 {
	var num, den float64
	for t := 0; t < n; t++ {
		xt := x[t*cols : (t+1)*cols]
		for r := 0; r < rows; r++ {
			wr, qr := w[r*cols:(r+1)*cols], q[r*cols:(r+1)*cols]
			var y, yq float64
			for j, xv := range xt {
				y += float64(xv) * float64(wr[j])
				yq += float64(xv) * float64(qr[j])
			}
			num += (y - yq) * (y - yq)
			den += y * y
		}
	}
	return num / den
}

func testMatrix(rows, cols int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(math.Sin(float64(i))) * float32(1+i/cols)
	}
	return w
}

func nan() float64 { return math.NaN() }
