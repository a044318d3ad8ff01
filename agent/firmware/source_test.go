package firmware

import (
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		name, in string
		want     Source
		err      string // a part of the error; "" for none
	}{
		{"binary id", "binary:42", Source{BinaryID: "42"}, ""},
		{"agent binary URL", "http://agent.example.com:8080/inventory/binaries/42", Source{BinaryID: "42"}, ""},
		{"agent binary URL over https behind a prefix", "https://iot.example.com/lwm2m/inventory/binaries/7", Source{BinaryID: "7"}, ""},
		{"external http", "http://files.example.com/fw/1.2.bin", Source{URL: "http://files.example.com/fw/1.2.bin"}, ""},
		{"external coaps", "coaps://files.example.com/fw", Source{URL: "coaps://files.example.com/fw"}, ""},
		{"binaries path on coap is external", "coap://h/inventory/binaries/3", Source{URL: "coap://h/inventory/binaries/3"}, ""},
		{"binaries path with a non-id is external", "http://h/inventory/binaries/abc", Source{URL: "http://h/inventory/binaries/abc"}, ""},
		{"spaces around", "  binary:5 ", Source{BinaryID: "5"}, ""},
		{"empty", "", Source{}, "empty"},
		{"binary without id", "binary:", Source{}, "digits"},
		{"binary with letters", "binary:x1", Source{}, "digits"},
		{"no scheme", "files.example.com/fw.bin", Source{}, "no scheme"},
		{"ftp", "ftp://files.example.com/fw.bin", Source{}, "not one of"},
		{"no host", "http:///fw.bin", Source{}, "no host"},
		{"password hidden", "ftp://u:secret@h/fw", Source{}, "xxx@h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSource(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseSource(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSource(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}
