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

// Weight is one quantized matrix (quant_weight): the codes, scales, zero points and, for the
// calibrated methods, input scales or group index.
type Weight struct {
	p *C.quant_weight
}

func newWeight(p *C.quant_weight) *Weight {
	w := &Weight{p: p}
	runtime.SetFinalizer(w, (*Weight).Close)
	return w
}

// Quantize quantizes the row-major rows x cols matrix w with method m. calib may be nil for the
// round-to-nearest kinds (INT8, INT4, FP8); AWQ, SmoothQuant and GPTQ need it (ErrInvalidArgument
// otherwise). opts may be nil (the defaults).
func Quantize(m Method, opts *Options, w []float32, rows, cols int, calib *Calib) (*Weight, error) {
	const fn = "quant_quantize"
	r, c, _, err := dims(fn, len(w), rows, cols, 0)
	if err != nil {
		return nil, err
	}
	cm := m.c()
	var p *C.quant_weight
	err = call(fn, func() C.quant_status {
		return C.quant_quantize(&cm, opts.handle(), (*C.float)(ptr(w)), r, c, calib.handle(), &p)
	})
	runtime.KeepAlive(opts)
	runtime.KeepAlive(calib)
	if err != nil {
		return nil, err
	}
	return newWeight(p), nil
}

// QuantizeGroup quantizes several matrices that read the same input (q, k and v; gate and up)
// together, so that AWQ and SmoothQuant choose one per-input-channel scale for all of them.
// ws[i] holds rows[i] x cols floats. It returns one Weight per matrix.
func QuantizeGroup(m Method, opts *Options, ws [][]float32, rows []int, cols int, calib *Calib) ([]*Weight, error) {
	const fn = "quant_quantize_group"
	if len(ws) != len(rows) {
		return nil, fail(StatusShapeMismatch, fn, "%d matrices but %d row counts", len(ws), len(rows))
	}
	cc, err := size(fn, "cols", cols)
	if err != nil {
		return nil, err
	}
	n := len(ws)
	crows := make([]C.size_t, n)
	for i := range ws {
		r, _, _, err := dims(fn, len(ws[i]), rows[i], cols, 0)
		if err != nil {
			return nil, err
		}
		if product(rows[i], cols) > uint64(len(ws[i])) {
			return nil, fail(StatusInvalidArgument, fn, "rows[%d] * cols overflows", i)
		}
		crows[i] = r
	}
	// cgo forbids storing Go pointers in memory passed to C (the array of matrix pointers), so the
	// matrices are copied into C memory for the call (Go 1.21's runtime.Pinner would avoid the copy).
	var cws **C.float
	if n > 0 {
		cws = (**C.float)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.float)(nil)))))
		if cws == nil {
			return nil, fail(StatusOutOfMemory, fn, "cannot allocate %d pointers", n)
		}
		arr := unsafe.Slice(cws, n)
		defer func() {
			for _, a := range arr {
				C.free(unsafe.Pointer(a))
			}
			C.free(unsafe.Pointer(cws))
		}()
		for i, wi := range ws {
			need := rows[i] * cols
			if len(wi) == 0 || need == 0 {
				continue // NULL or zero rows: the library reports it
			}
			a := (*C.float)(C.malloc(C.size_t(need) * C.size_t(unsafe.Sizeof(C.float(0)))))
			if a == nil {
				return nil, fail(StatusOutOfMemory, fn, "cannot copy matrix %d (%d floats)", i, need)
			}
			copy(unsafe.Slice((*float32)(unsafe.Pointer(a)), need), wi[:need])
			arr[i] = a
		}
	}
	out := make([]*C.quant_weight, n)
	cm := m.c()
	err = call(fn, func() C.quant_status {
		return C.quant_quantize_group(&cm, opts.handle(), cws, (*C.size_t)(ptr(crows)), C.size_t(n), cc,
			calib.handle(), (**C.quant_weight)(ptr(out)))
	})
	runtime.KeepAlive(opts)
	runtime.KeepAlive(calib)
	if err != nil {
		return nil, err
	}
	result := make([]*Weight, n)
	for i, p := range out {
		result[i] = newWeight(p)
	}
	return result, nil
}

// Shape is the matrix's rows (output features) and cols (input features).
func (w *Weight) Shape() (rows, cols int, err error) {
	var r, c C.size_t
	err = call("quant_weight_shape", func() C.quant_status { return C.quant_weight_shape(w.p, &r, &c) })
	runtime.KeepAlive(w)
	return int(r), int(c), err
}

// Method is the method the matrix was quantized with.
func (w *Weight) Method() (Method, error) {
	var out C.quant_method
	err := call("quant_weight_method", func() C.quant_status { return C.quant_weight_method(w.p, &out) })
	runtime.KeepAlive(w)
	if err != nil {
		return Method{}, err
	}
	return methodFromC(out), nil
}

// copyOut copies n elements from C memory owned by the weight into a new Go slice (nil for none).
func copyOut[T any](p *T, n C.size_t) []T {
	if p == nil || n == 0 {
		return nil
	}
	out := make([]T, int(n))
	copy(out, unsafe.Slice(p, int(n)))
	return out
}

// Data is a copy of the packed codes: each row starts on a byte, element j of a row takes bits
// [j*b, (j+1)*b) of the row's bit string, least significant bit first. INT8 codes are two's
// complement, FP8 codes raw, the others unsigned with integer zero points.
func (w *Weight) Data() []byte {
	var n C.size_t
	p := C.quant_weight_data(w.p, &n)
	out := copyOut((*byte)(unsafe.Pointer(p)), n)
	runtime.KeepAlive(w)
	return out
}

// Int8Data is Data as signed bytes: the codes of an INT8 or SmoothQuant weight, for Int8GEMM.
func (w *Weight) Int8Data() []int8 {
	d := w.Data()
	out := make([]int8, len(d))
	for i, v := range d {
		out[i] = int8(v)
	}
	return out
}

// Scales is a copy of the scales, one per group.
func (w *Weight) Scales() []float32 {
	var n C.size_t
	p := C.quant_weight_scales(w.p, &n)
	out := copyOut((*float32)(unsafe.Pointer(p)), n)
	runtime.KeepAlive(w)
	return out
}

// ZeroPoints is a copy of the zero points, nil when the method has none.
func (w *Weight) ZeroPoints() []float32 {
	var n C.size_t
	p := C.quant_weight_zero_points(w.p, &n)
	out := copyOut((*float32)(unsafe.Pointer(p)), n)
	runtime.KeepAlive(w)
	return out
}

// InputScales is a copy of AWQ's or SmoothQuant's per-input-channel scales s (the layer computes
// (x / s) . W_q^T, so 1/s is folded into the previous operation); nil for the other methods.
func (w *Weight) InputScales() []float32 {
	var n C.size_t
	p := C.quant_weight_input_scales(w.p, &n)
	out := copyOut((*float32)(unsafe.Pointer(p)), n)
	runtime.KeepAlive(w)
	return out
}

// GroupIndex is a copy of GPTQ's act-order group index g_idx (one per column); nil otherwise.
func (w *Weight) GroupIndex() []int32 {
	var n C.size_t
	p := C.quant_weight_group_index(w.p, &n)
	out := copyOut((*int32)(unsafe.Pointer(p)), n)
	runtime.KeepAlive(w)
	return out
}

// Dequantize returns the effective weight in the original input basis (input scales undone), to
// compare with the original matrix.
func (w *Weight) Dequantize() ([]float32, error) {
	rows, cols, err := w.Shape()
	if err != nil {
		return nil, err
	}
	dst := make([]float32, rows*cols)
	if err := w.DequantizeInto(dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// DequantizeInto writes the effective weight into dst (rows*cols values). Nothing is written on error.
func (w *Weight) DequantizeInto(dst []float32) error {
	err := call("quant_weight_dequantize", func() C.quant_status {
		return C.quant_weight_dequantize(w.p, (*C.float)(ptr(dst)), C.size_t(len(dst)))
	})
	runtime.KeepAlive(w)
	return err
}

// Close frees the quantized matrix; it is idempotent. Slices returned earlier are copies and stay valid.
func (w *Weight) Close() error {
	if w.p != nil {
		C.quant_weight_free(w.p)
		w.p = nil
		runtime.SetFinalizer(w, nil)
	}
	return nil
}
