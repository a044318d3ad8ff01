package codec

import (
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// TestNamePathMatchesParsePath holds the fast name parser to the rules of
// node.ParsePath over the joined name.
func TestNamePathMatchesParsePath(t *testing.T) {
	names := [][2]string{
		{"/3/0/", "0"}, {"/3/0", "9"}, {"/3/0/", "/9"}, {"", "/3/0/9"}, {"/3/0/9", ""}, {"/", "3/0/9"},
		{"3/0/", "7/1"}, {"/", ""}, {"", ""}, {"/3//", "0"}, {"/3/0/", "01"}, {"/3/0/", "65535"},
		{"/3/0/", "65534"}, {"/1/2/3/4/", "5"}, {"/3/0/", "x"}, {"/3/0/", "-1"}, {"//3/0//", "//9//"},
		{"/3/0/", "123456"}, {"/3/0/", " 1"},
	}
	for _, nm := range names {
		t.Run(nm[0]+"|"+nm[1], func(t *testing.T) {
			got, gotErr := namePath(nm[0], nm[1])
			want, wantErr := node.ParsePath(joinName(nm[0], nm[1]))
			if (gotErr == nil) != (wantErr == nil) || got != want {
				t.Fatalf("namePath = %v, %v; ParsePath = %v, %v", got, gotErr, want, wantErr)
			}
		})
	}
}

func FuzzNamePath(f *testing.F) {
	f.Add("/3/0/", "7/1")
	f.Add("/3/0", "9")
	f.Fuzz(func(t *testing.T, bn, n string) {
		got, gotErr := namePath(bn, n)
		want, wantErr := node.ParsePath(joinName(bn, n))
		if (gotErr == nil) != (wantErr == nil) || got != want {
			t.Fatalf("namePath(%q, %q) = %v, %v; ParsePath = %v, %v", bn, n, got, gotErr, want, wantErr)
		}
	})
}
