// Quantizes a matrix to INT4 (groups of 32) with the Go binding, and shows an error value.
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig LD_LIBRARY_PATH=$PREFIX/lib go run .
package main

import (
	"errors"
	"fmt"
	"log"
	"math"

	"quant"
)

func main() {
	const rows, cols = 8, 64
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(math.Sin(0.1 * float64(i)))
	}

	q, err := quant.Quantize(quant.Int4(32), nil, w, rows, cols, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	back, err := q.Dequantize()
	if err != nil {
		log.Fatal(err)
	}
	maxErr := 0.0
	for i := range w {
		maxErr = math.Max(maxErr, math.Abs(float64(back[i]-w[i])))
	}
	fmt.Printf("%v: %d code bytes, %d scales, max error %.4f\n", quant.Int4(32), len(q.Data()), len(q.Scales()), maxErr)

	// GPTQ needs a calibration: the error carries the status and the library's detail.
	_, err = quant.Quantize(quant.GPTQ(4, 128), nil, w, rows, cols, nil)
	var qe *quant.Error
	if errors.As(err, &qe) && errors.Is(err, quant.ErrInvalidArgument) {
		fmt.Printf("GPTQ without a calibration is refused, as expected: status %d (%v): %s\n", qe.Status, qe.Status, qe.Detail)
	} else {
		log.Fatalf("expected an invalid-argument error, got %v", err)
	}
	if maxErr > 0.1 {
		log.Fatalf("max error %v", maxErr)
	}
}
