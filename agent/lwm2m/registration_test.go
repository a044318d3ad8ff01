package lwm2m

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
)

func TestParseRegisterQuery(t *testing.T) {
	tests := []struct {
		name    string
		queries []string
		want    registerParams
		wantErr bool
	}{
		{"spec example 1.0", []string{"ep=epname", "b=UQ", "lt=3600", "sms=123456789"},
			registerParams{endpoint: "epname", binding: "UQ", hasBinding: true, lifetime: time.Hour, hasLifetime: true, sms: "123456789", hasSMS: true}, false},
		{"1.1 with Q and at", []string{"ep=e", "lwm2m=1.1", "Q", "at=120000"},
			registerParams{endpoint: "e", version: "1.1", queue: true, awake: 2 * time.Minute, hasAwake: true}, false},
		{"unknown parameters ignored", []string{"ep=e", "d=domain", "pid=7"}, registerParams{endpoint: "e"}, false},
		{"zero lifetime", []string{"ep=e", "lt=0"}, registerParams{}, true},
		{"negative lifetime", []string{"ep=e", "lt=-5"}, registerParams{}, true},
		{"Q with value", []string{"ep=e", "Q=1"}, registerParams{}, true},
		{"bad awake time", []string{"ep=e", "at=x"}, registerParams{}, true},
		{"unknown parameter twice", []string{"ep=e", "d=x", "d=y"}, registerParams{endpoint: "e"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRegisterQuery(tt.queries)
			if tt.wantErr {
				if !errors.Is(err, errBadRequest) {
					t.Fatalf("err = %v, want errBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRegisterQueryDuplicate(t *testing.T) {
	tests := []struct {
		name    string
		queries []string
		param   string
	}{
		{"ep", []string{"ep=a", "ep=b"}, "ep"},
		{"ep same value", []string{"ep=a", "lt=60", "ep=a"}, "ep"},
		{"ep empty second", []string{"ep=a", "ep"}, "ep"},
		{"lt", []string{"ep=a", "lt=60", "lt=120"}, "lt"},
		{"lwm2m", []string{"lwm2m=1.1", "ep=a", "lwm2m=1.0"}, "lwm2m"},
		{"b", []string{"ep=a", "b=U", "b=UQ"}, "b"},
		{"sms", []string{"ep=a", "sms=1", "sms=2"}, "sms"},
		{"Q", []string{"ep=a", "Q", "Q"}, "Q"},
		{"at", []string{"ep=a", "at=1", "at=2"}, "at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRegisterQuery(tt.queries)
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("err = %v, want errBadRequest", err)
			}
			if want := `parameter "` + tt.param + `" given twice`; !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one containing %s", err, want)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "1.0", true}, {"1.0", "1.0", true}, {"1.1", "1.1", true}, {"1.2", "1.2", true},
		{"1.3", "", false}, {"2.0", "", false}, {"1", "", false}, {"1.1.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := checkVersion(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("checkVersion(%q) = %q, %v", tt.in, got, err)
			}
			if err != nil && !errors.Is(err, errVersion) {
				t.Fatalf("err = %v, want errVersion", err)
			}
		})
	}
}

func TestParseObjectLinks(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		root    string
		ct      codec.Format
		objects string // paths with ;ver
		wantErr bool
	}{
		{"1.0 spec example", "</1/0>,</1/1>,</2/0>,</2/1>,</2/2>,</2/3>,</2/4>,</3/0>,</4/0>,</5>", "/", 0,
			"/1/0,/1/1,/2/0,/2/1,/2/2,/2/3,/2/4,/3/0,/4/0,/5", false},
		{"root link with content format", `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>`, "/", codec.LwM2MJSON, "/1/0,/3/0", false},
		{"1.1 ct list", `</>;rt="oma.lwm2m";ct="60 110 112",</3/0>`, "/", codec.CBOR, "/3/0", false},
		{"alternate path", `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>,</other/4/0>`, "/lwm2m/", 0, "/1/0,/3/0", false},
		{"root link last", `</lwm2m/3/0>,</lwm2m>;rt="oma.lwm2m"`, "/lwm2m/", 0, "/3/0", false},
		{"object versions", `</3303>;ver=1.1,</3303/0>,</3/0>`, "/", 0, "/3303;ver=1.1,/3303/0,/3/0", false},
		{"resource links skipped", `</3/0/1>,</3/0>`, "/", 0, "/3/0", false},
		{"whitespace", " </3/0> ,\n</4/0>", "/", 0, "/3/0,/4/0", false},
		{"empty", "", "/", 0, "", false},
		{"not link format", "3/0", "", 0, "", true},
		{"unterminated", "</3/0", "", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseObjectLinks([]byte(tt.payload))
			if tt.wantErr {
				if !errors.Is(err, errBadRequest) {
					t.Fatalf("err = %v, want errBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var objs []string
			for _, o := range got.objects {
				s := o.Path.String()
				if o.Version != "" {
					s += ";ver=" + o.Version
				}
				objs = append(objs, s)
			}
			if got.root != tt.root || got.contentFormat != tt.ct || strings.Join(objs, ",") != tt.objects {
				t.Fatalf("got root %q ct %v objects %q", got.root, got.contentFormat, strings.Join(objs, ","))
			}
		})
	}
}

func TestQueueMode(t *testing.T) {
	tests := []struct {
		binding string
		q       bool
		want    bool
	}{
		{"U", false, false}, {"UQ", false, true}, {"UQS", false, true}, {"U", true, true}, {"", false, false},
	}
	for _, tt := range tests {
		if got := queueMode(tt.binding, tt.q); got != tt.want {
			t.Errorf("queueMode(%q, %v) = %v", tt.binding, tt.q, got)
		}
	}
}

func FuzzParseObjectLinks(f *testing.F) {
	for _, s := range []string{
		"</1/0>,</1/1>,</3/0>,</5>",
		`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>`,
		`</lwm2m>;rt="oma.lwm2m";ct="60 110",</lwm2m/1/0>`,
		`</3303>;ver=1.1,</3303/0>`,
		"</3/0",
		`<>;rt=";,"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseObjectLinks(b)
		if err != nil {
			return
		}
		if len(got.objects) > maxObjectLinks {
			t.Fatalf("%d objects", len(got.objects))
		}
		for _, o := range got.objects {
			if o.Path.Depth < 1 || o.Path.Depth > 2 {
				t.Fatalf("object path %s", o.Path)
			}
		}
		if !strings.HasPrefix(got.root, "/") || !strings.HasSuffix(got.root, "/") {
			t.Fatalf("root %q", got.root)
		}
	})
}

func FuzzParseRegisterQuery(f *testing.F) {
	f.Add("ep=a&lt=60&lwm2m=1.1&b=UQ&sms=1&Q&at=1000")
	f.Add("lt=-1&at=x")
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parseRegisterQuery(strings.Split(q, "&"))
		if err != nil {
			return
		}
		if p.hasLifetime && p.lifetime <= 0 {
			t.Fatalf("lifetime %v accepted", p.lifetime)
		}
	})
}

func BenchmarkParseObjectLinks(b *testing.B) {
	payload := []byte(`</>;rt="oma.lwm2m";ct=11542,</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</3303>;ver=1.1,</3303/0>,</3303/1>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseObjectLinks(payload); err != nil {
			b.Fatal(err)
		}
	}
}
