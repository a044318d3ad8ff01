package simulator

import (
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func TestCheckJSON10(t *testing.T) {
	tests := []struct {
		name, path, body string
		ok               bool
	}{
		{"string resource", "/3/0/14", `{"bn":"/3/0/","e":[{"n":"14","sv":"+03:00"}]}`, true},
		{"time resource", "/3/0/13", `{"bn":"/3/0/","e":[{"n":"13","v":1367491215}]}`, true},
		{"instance", "/1/0", `{"bn":"/1/0/","e":[{"n":"1","v":300},{"n":"6","bv":false},{"n":"7","sv":"U"}]}`, true},
		{"create", "/3303", `{"bn":"/3303/","e":[{"n":"1/5700","v":12.5},{"n":"1/5701","sv":"Cel"}]}`, true},
		{"create of an instance base", "/3303", `{"bn":"/3303/1/","e":[{"n":"5700","v":12.5}]}`, true},
		{"empty create", "/3303", `{"bn":"/3303/","e":[]}`, true},
		{"object base for a resource", "/3/0/14", `{"bn":"/3/","e":[{"n":"0/14","sv":"+03:00"}]}`, true},
		{"resource as base name", "/3/0/14", `{"bn":"/3/0/14","e":[{"sv":"+03:00"}]}`, false},
		{"resource as base name with slash", "/3/0/14", `{"bn":"/3/0/14/","e":[{"sv":"+03:00"}]}`, false},
		{"no base name", "/3/0/14", `{"e":[{"n":"/3/0/14","sv":"+03:00"}]}`, false},
		{"base name without slash", "/3/0/14", `{"bn":"/3/0","e":[{"n":"14","sv":"+03:00"}]}`, false},
		{"integer as string", "/1/0/1", `{"bn":"/1/0/","e":[{"n":"1","sv":"300"}]}`, false},
		{"boolean as number", "/1/0/6", `{"bn":"/1/0/","e":[{"n":"6","v":0}]}`, false},
		{"string as number", "/3/0/14", `{"bn":"/3/0/","e":[{"n":"14","v":3}]}`, false},
		{"other instance", "/3/0/14", `{"bn":"/3/1/","e":[{"n":"14","sv":"+03:00"}]}`, false},
		{"not json", "/3/0/14", `+03:00`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJSON10(builtin, node.MustParsePath(tt.path), []byte(tt.body))
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && codeOf(err) != codes.BadRequest {
				t.Fatalf("err = %v, want 4.00", err)
			}
		})
	}
}

func TestEmptyInstanceTLV(t *testing.T) {
	tests := []struct {
		body []byte
		id   uint16
		ok   bool
	}{
		{[]byte{0x00, 0x04}, 4, true},
		{[]byte{0x20, 0x01, 0x2c}, 300, true},
		{[]byte{0x03, 0x01, 0xc1, 0x0c, 0x05}, 0, false}, // an instance with a resource
		{[]byte{0xc1, 0x0c, 0x05}, 0, false},             // a resource
		{[]byte{0x00}, 0, false},
		{nil, 0, false},
	}
	for _, tt := range tests {
		id, ok := emptyInstanceTLV(codec.TLV, tt.body)
		if id != tt.id || ok != tt.ok {
			t.Errorf("emptyInstanceTLV(%x) = %d, %v, want %d, %v", tt.body, id, ok, tt.id, tt.ok)
		}
	}
	if _, ok := emptyInstanceTLV(codec.SenMLCBOR, []byte{0x00, 0x04}); ok {
		t.Error("not TLV: accepted")
	}
}
