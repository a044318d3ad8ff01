package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var ctx = context.Background()

// must unwraps a result in test setup; a failure panics, failing the test
// with the stack of the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct{ name, q string }{
		{"no operator", "name 'x'"},
		{"unknown operator", "name like 'x'"},
		{"unterminated string", "name eq 'x"},
		{"missing paren", "(name eq 'x'"},
		{"trailing", "name eq 'x' 'y'"},
		{"has without name", "has()"},
		{"bad field", "$where eq 1"},
		{"bad orderby", "$orderby=name sideways"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.ParseQuery(tc.q); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("ParseQuery(%q) = %v, want ErrInvalid", tc.q, err)
			}
		})
	}
}
