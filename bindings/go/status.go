// Package quant is the Go binding of quant, LLM weight-quantization kernels and algorithms (INT8,
// INT4, FP8, FP16/BF16, GPTQ, AWQ, SmoothQuant) behind a stable C ABI.
//
// The package links the installed C library through pkg-config (the module quant, see quant.pc):
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig go build
//
// (and LD_LIBRARY_PATH=$PREFIX/lib to run, unless $PREFIX/lib is a system library directory).
//
// Conventions:
//   - Matrices are row-major []float32; rows = output features, cols = input features (the layout of
//     a torch.nn.Linear weight). groupSize 0 means one scale per row, k > 0 one scale per k columns.
//   - Every failure is an error of type *Error, carrying the Status and the library's detail.
//     errors.Is(err, quant.ErrBufferTooSmall) tests the status. Arguments are checked before the C
//     call: a slice that is too short is ErrBufferTooSmall, a negative size ErrInvalidArgument.
//   - Results are returned in new Go slices; the ...Into variants write into slices you own.
//   - Handles (Calib, Options, Config, Weight) own C memory: call Close when done. A finalizer frees
//     a handle that was not closed, as a safety net. A handle may be read from several goroutines at
//     once but must not be modified (Add, Set..., Close) while another goroutine uses it.
package quant

/*
#cgo pkg-config: quant
#include <stdlib.h>
#include <quant.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// Status is a quant_status code: StatusOK or one of the error codes.
type Status int32

// The status codes of the C API (append-only; a retired code is never reused).
const (
	StatusOK              Status = C.QUANT_OK
	StatusNullPointer     Status = C.QUANT_ERR_NULL_POINTER
	StatusInvalidArgument Status = C.QUANT_ERR_INVALID_ARGUMENT
	StatusBufferTooSmall  Status = C.QUANT_ERR_BUFFER_TOO_SMALL
	StatusShapeMismatch   Status = C.QUANT_ERR_SHAPE_MISMATCH
	StatusNonFinite       Status = C.QUANT_ERR_NON_FINITE
	StatusNumerical       Status = C.QUANT_ERR_NUMERICAL
	StatusUnsupported     Status = C.QUANT_ERR_UNSUPPORTED
	StatusOutOfMemory     Status = C.QUANT_ERR_OUT_OF_MEMORY
	StatusInternal        Status = C.QUANT_ERR_INTERNAL
)

// String is the library's static description of the status (quant_status_string).
func (s Status) String() string {
	return C.GoString(C.quant_status_string(C.quant_status(s)))
}

// Error is a failed call: the status, the function that failed and the library's detail.
type Error struct {
	Status Status // the QUANT_ERR_* code
	Func   string // the C function (or Go method) that failed
	Detail string // the human-readable detail, e.g. which argument was wrong
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %s", e.Func, e.Status)
	}
	return fmt.Sprintf("%s: %s (%s)", e.Func, e.Status, e.Detail)
}

// Is reports whether target is an *Error with the same status and no function (one of the Err...
// sentinels), so that errors.Is(err, quant.ErrNonFinite) tests the status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Func == "" && t.Status == e.Status
}

// Sentinels for errors.Is.
var (
	ErrNullPointer     = &Error{Status: StatusNullPointer}
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrBufferTooSmall  = &Error{Status: StatusBufferTooSmall}
	ErrShapeMismatch   = &Error{Status: StatusShapeMismatch}
	ErrNonFinite       = &Error{Status: StatusNonFinite}
	ErrNumerical       = &Error{Status: StatusNumerical}
	ErrUnsupported     = &Error{Status: StatusUnsupported}
	ErrOutOfMemory     = &Error{Status: StatusOutOfMemory}
	ErrInternal        = &Error{Status: StatusInternal}
)

// Version is the library's version as (major << 16) | (minor << 8) | patch.
func Version() uint32 { return uint32(C.quant_version()) }

// VersionString is the library's version as text, e.g. "0.2.0".
func VersionString() string { return C.GoString(C.quant_version_string()) }

// HeaderVersion is the version of quant.h this package was compiled against; it equals Version()
// when the header and the library match.
const HeaderVersion uint32 = C.QUANT_VERSION_NUMBER

// lastError copies the calling thread's detail; the caller holds runtime.LockOSThread.
func lastError() string {
	n := C.quant_last_error(nil, 0)
	if n == 0 {
		return ""
	}
	buf := make([]byte, int(n)+1)
	C.quant_last_error((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:n])
}

// call runs one status-returning C call and turns a failure into *Error with the detail. The
// detail is kept per OS thread, so the goroutine stays on its thread from the call to the read.
func call(name string, f func() C.quant_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := Status(f())
	if st == StatusOK {
		return nil
	}
	return &Error{Status: st, Func: name, Detail: lastError()}
}

// fail is an error found by the binding before any C call.
func fail(st Status, name, format string, args ...any) error {
	return &Error{Status: st, Func: name, Detail: fmt.Sprintf(format, args...)}
}

// size converts a Go length or count to size_t; negative values are ErrInvalidArgument.
func size(name, what string, v int) (C.size_t, error) {
	if v < 0 {
		return 0, fail(StatusInvalidArgument, name, "%s is negative (%d)", what, v)
	}
	return C.size_t(v), nil
}

// need checks that a slice the C function reads without a length holds n elements.
func need(name, what string, have int, n uint64) error {
	if uint64(have) < n {
		return fail(StatusBufferTooSmall, name, "%s holds %d elements, needs %d", what, have, n)
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)

// product is rows * cols, or MaxUint64 when it overflows (the C call reports the overflow).
func product(rows, cols int) uint64 {
	r, c := uint64(rows), uint64(cols)
	if c != 0 && r > ^uint64(0)/c {
		return ^uint64(0)
	}
	return r * c
}

// cstring converts a Go string for C; a NUL inside it is ErrInvalidArgument. Free with C.free.
func cstring(name, what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fail(StatusInvalidArgument, name, "%s contains a NUL byte", what)
	}
	return C.CString(s), nil
}

// ptr returns the address of a slice's first element, or nil for an empty slice.
func ptr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

func itoa(v int64) string { return fmt.Sprintf("%d", v) }

// shape converts rows, cols and groupSize to size_t; negative values are ErrInvalidArgument.
func shape(fn string, rows, cols, groupSize int) (r, c, g C.size_t, err error) {
	if r, err = size(fn, "rows", rows); err != nil {
		return
	}
	if c, err = size(fn, "cols", cols); err != nil {
		return
	}
	g, err = size(fn, "group_size", groupSize)
	return
}

// dims is shape, and checks that the source, read without a length by C, holds rows * cols elements.
func dims(fn string, have, rows, cols, groupSize int) (r, c, g C.size_t, err error) {
	if r, c, g, err = shape(fn, rows, cols, groupSize); err != nil {
		return
	}
	if product(rows, cols) > uint64(maxInt) {
		err = fail(StatusInvalidArgument, fn, "%d x %d overflows", rows, cols)
		return
	}
	err = need(fn, "src", have, product(rows, cols))
	return
}

// groups is rows * ceil(cols / groupSize) (groupSize 0: rows), as quant_scale_count, in Go.
func groups(rows, cols, groupSize int) int {
	if rows <= 0 || cols <= 0 || groupSize < 0 {
		return 0
	}
	if groupSize == 0 {
		return rows
	}
	return rows * ((cols + groupSize - 1) / groupSize)
}
