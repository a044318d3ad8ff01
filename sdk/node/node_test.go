package node

import (
	"errors"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in      string
		want    Path
		str     string
		wantErr bool
	}{
		{in: "/", want: Root, str: "/"},
		{in: "/3", want: ObjectPath(3), str: "/3"},
		{in: "3/0", want: InstancePath(3, 0), str: "/3/0"},
		{in: "/3/0/1", want: ResourcePath(3, 0, 1), str: "/3/0/1"},
		{in: "/3/0/7/1", want: ResourceInstancePath(3, 0, 7, 1), str: "/3/0/7/1"},
		{in: "/3303/0/5700/", want: ResourcePath(3303, 0, 5700), str: "/3303/0/5700"},
		{in: "/65534", want: ObjectPath(65534), str: "/65534"},
		{in: "", wantErr: true},
		{in: "/65535", wantErr: true},
		{in: "/3/x", wantErr: true},
		{in: "/3/-1", wantErr: true},
		{in: "/03", wantErr: true},
		{in: "/1/2/3/4/5", wantErr: true},
		{in: "/3//1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("ParsePath(%q) = %v, %v; want ErrBadPath", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePath(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func TestPathRelations(t *testing.T) {
	r := MustParsePath("/3/0/7/1")
	if got := r.Parent(); got != ResourcePath(3, 0, 7) {
		t.Errorf("Parent = %v", got)
	}
	if got := r.Parent().Parent().Parent().Parent(); got != Root {
		t.Errorf("four parents = %v", got)
	}
	if got := InstancePath(3, 0).Child(7); got != ResourcePath(3, 0, 7) {
		t.Errorf("Child = %v", got)
	}
	if !InstancePath(3, 0).Contains(r) || InstancePath(3, 1).Contains(r) || r.Contains(InstancePath(3, 0)) || !Root.Contains(r) {
		t.Error("Contains is wrong")
	}
	if got := r.ResourceOf(); got != ResourcePath(3, 0, 7) {
		t.Errorf("ResourceOf = %v", got)
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		typ     Type
		in      string
		want    Value
		wantErr bool
	}{
		{TypeString, "+02:00", String("+02:00"), false},
		{TypeInteger, "-42", Int(-42), false},
		{TypeInteger, "4.2", Value{}, true},
		{TypeUnsignedInteger, "42", Uint(42), false},
		{TypeUnsignedInteger, "-1", Value{}, true},
		{TypeFloat, "21.5", Float(21.5), false},
		{TypeFloat, "warm", Value{}, true},
		{TypeBoolean, "true", Bool(true), false},
		{TypeBoolean, "0", Bool(false), false},
		{TypeBoolean, "yes", Value{}, true},
		{TypeTime, "1700000000", TimeValue(time.Unix(1700000000, 0)), false},
		{TypeTime, "2023-11-14T22:13:20Z", TimeValue(time.Unix(1700000000, 0)), false},
		{TypeTime, "tomorrow", Value{}, true},
		{TypeObjlnk, "3:0", Link(3, 0), false},
		{TypeObjlnk, "3", Value{}, true},
		{TypeOpaque, "0aff", Opaque([]byte{0x0a, 0xff}), false},
		{TypeOpaque, "xyz", Value{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String()+"/"+tt.in, func(t *testing.T) {
			got, err := ParseText(tt.typ, tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseText(%v, %q) = %+v, want an error", tt.typ, tt.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("ParseText(%v, %q) = %+v, %v; want %+v", tt.typ, tt.in, got, err, tt.want)
			}
			// text form parses back to the same value
			back, err := ParseText(tt.typ, got.Text())
			if err != nil || !back.Equal(got) {
				t.Errorf("round trip of %q: %+v, %v", got.Text(), back, err)
			}
		})
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"Unsigned Integer": TypeUnsignedInteger, "Objlnk": TypeObjlnk, "FLOAT": TypeFloat, "": TypeNone, "corelnk": TypeCorelnk} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseType("Double"); err == nil {
		t.Error("ParseType(Double) accepted")
	}
}

// Paths arrive from the network (Location paths, SenML names) and the API.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/", "/3/0/1", "3303/0/5700/", "/65535", "/1/2/3/4/5", "//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q != p {
			t.Fatalf("%q → %v → %q → %v, %v", s, p, p.String(), q, err)
		}
	})
}
