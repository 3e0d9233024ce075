package quant

import (
	"errors"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	if Version() != HeaderVersion {
		t.Fatalf("library version %#x, header %#x", Version(), HeaderVersion)
	}
	v := Version()
	want := itoa(int64(v>>16)) + "." + itoa(int64(v>>8&0xff)) + "." + itoa(int64(v&0xff))
	if VersionString() != want {
		t.Fatalf("VersionString %q, want %q", VersionString(), want)
	}
}

func TestStatus(t *testing.T) {
	if StatusOK.String() != "success" {
		t.Fatalf("StatusOK is %q", StatusOK.String())
	}
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusInternal; s++ {
		if s.String() == "" || seen[s.String()] {
			t.Fatalf("status %d has an empty or repeated text %q", s, s.String())
		}
		seen[s.String()] = true
	}
	if Status(12345).String() == "" {
		t.Fatal("unknown status has no text")
	}
	e := &Error{Status: StatusNonFinite, Func: "f", Detail: "x[3] is NaN"}
	if !errors.Is(e, ErrNonFinite) || errors.Is(e, ErrNumerical) {
		t.Fatal("errors.Is does not test the status")
	}
	if !strings.Contains(e.Error(), "x[3] is NaN") || !strings.Contains(e.Error(), "f: ") {
		t.Fatalf("Error() = %q", e.Error())
	}
	var wrapped error = &Error{Status: StatusInternal, Func: "g"}
	if !errors.Is(wrapped, ErrInternal) || wrapped.Error() != "g: "+StatusInternal.String() {
		t.Fatalf("Error() without detail = %q", wrapped.Error())
	}
}
