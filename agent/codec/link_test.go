package codec

import (
	"errors"
	"reflect"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func attr(k, v string) LinkAttr         { return LinkAttr{Key: k, Value: v, HasValue: true} }
func qattr(k, v string) LinkAttr        { return LinkAttr{Key: k, Value: v, HasValue: true, Quoted: true} }
func flag(k string) LinkAttr            { return LinkAttr{Key: k} }
func link(t string, a ...LinkAttr) Link { return Link{Target: t, Attrs: a} }

func TestParseLinks(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Link
		// out is what FormatLinks writes back; empty means in itself.
		out string
	}{
		{
			name: "register payload of the Core specification",
			in:   `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1,</3303>;ver=1.1`,
			want: []Link{
				link("/", qattr("rt", "oma.lwm2m"), attr("ct", "110")),
				link("/1/0"), link("/3/0", attr("ver", "1.1")), link("/3303", attr("ver", "1.1")),
			},
		},
		{
			name: "1.0 register payload with object list",
			in:   `</1/0>,</1/1>,</2/0>,</2/1>,</2/2>,</2/3>,</2/4>,</3/0>,</4/0>,</5>`,
			want: []Link{link("/1/0"), link("/1/1"), link("/2/0"), link("/2/1"), link("/2/2"), link("/2/3"), link("/2/4"), link("/3/0"), link("/4/0"), link("/5")},
		},
		{
			name: "content formats in a quoted list",
			in:   `</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1>;ver=1.1,</1/0>`,
			want: []Link{
				link("/", qattr("rt", "oma.lwm2m"), qattr("ct", "60 110 112 11542 11543")),
				link("/1", attr("ver", "1.1")), link("/1/0"),
			},
		},
		{
			name: "discover answer with attributes",
			in:   `</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/2>,</3/0/6>;dim=2,</3/0/7>;dim=2;gt=50;lt=42.2`,
			want: []Link{
				link("/3/0", attr("pmin", "10"), attr("pmax", "60")), link("/3/0/1"), link("/3/0/2"),
				link("/3/0/6", attr("dim", "2")), link("/3/0/7", attr("dim", "2"), attr("gt", "50"), attr("lt", "42.2")),
			},
		},
		{
			name: "alternate root path",
			in:   `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/101>,</lwm2m/3/0>`,
			want: []Link{link("/lwm2m", qattr("rt", "oma.lwm2m")), link("/lwm2m/1/101"), link("/lwm2m/3/0")},
		},
		{
			name: "whitespace, trailing and doubled commas",
			in:   " </1/0> ;  ver = 1.1 ,\n\t,</3/0>,  ",
			want: []Link{link("/1/0", attr("ver", "1.1")), link("/3/0")},
			out:  `</1/0>;ver=1.1,</3/0>`,
		},
		{
			name: "quoted values holding separators and escapes",
			in:   `</a>;title="x, y; \"z\" \\";obs,</b>;ct=""`,
			want: []Link{link("/a", qattr("title", `x, y; "z" \`), flag("obs")), link("/b", qattr("ct", ""))},
		},
		{
			name: "empty parameters are dropped",
			in:   `</a>;;obs;`,
			want: []Link{link("/a", flag("obs"))},
			out:  `</a>;obs`,
		},
		{name: "empty document", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLinks([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseLinks: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseLinks\n got %#v\nwant %#v", got, tt.want)
			}
			out := tt.out
			if out == "" {
				out = tt.in
			}
			if f := string(FormatLinks(got)); f != out {
				t.Errorf("FormatLinks\n got %s\nwant %s", f, out)
			}
		})
	}
}

func TestParseLinksMalformed(t *testing.T) {
	for _, in := range []string{`/1/0`, `</1/0`, `</1/0>;rt="oma`, `</1/0> x`, `</1/0>;="v"`, `</a>;k="\`} {
		t.Run(in, func(t *testing.T) {
			if _, err := ParseLinks([]byte(in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestFormatLinksQuotesWhenNeeded(t *testing.T) {
	got := string(FormatLinks([]Link{link("/a", attr("t", "a b"), attr("u", "x,y"), attr("v", "plain"))}))
	if want := `</a>;t="a b";u="x,y";v=plain`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestLinkPathAndAttr(t *testing.T) {
	links, err := ParseLinks([]byte(`</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>;ver=1.1,</other/1>`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := links[0].Attr("rt"); !ok || v != "oma.lwm2m" {
		t.Errorf("Attr(rt) = %q, %v", v, ok)
	}
	if _, ok := links[0].Attr("ct"); ok {
		t.Error("Attr(ct) found")
	}
	p, err := links[1].Path("/lwm2m")
	if err != nil || p != node.InstancePath(3, 0) {
		t.Errorf("Path = %v, %v", p, err)
	}
	if p, err := links[0].Path("/lwm2m/"); err != nil || p != node.Root {
		t.Errorf("root Path = %v, %v", p, err)
	}
	if _, err := links[2].Path("/lwm2m"); err == nil {
		t.Error("path outside the root accepted")
	}
}

func TestLinkFormatAsValue(t *testing.T) {
	base := node.MustParsePath("/1024/0/4")
	payload := []byte(`</1/0>,</3/0>;ver=1.1`)
	got, err := Decode(LinkFmt, base, payload, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, got, []node.Record{rec("/1024/0/4", node.CoreLink(string(payload)))})
	enc, err := Encode(LinkFmt, base, got)
	if err != nil || string(enc) != string(payload) {
		t.Fatalf("Encode = %q, %v", enc, err)
	}
	if _, err := Decode(LinkFmt, node.MustParsePath("/3/0"), payload, testTypes); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("instance: err = %v, want ErrUnsupported", err)
	}
}

func TestPreferred(t *testing.T) {
	tests := []struct {
		version  string
		declared Format
		want     Format
	}{
		{"", 0, TLV},
		{"1.0", 0, TLV},
		{"1.1", 0, SenMLCBOR},
		{"1.2", 0, SenMLCBOR},
		{"1.1", SenMLJSON, SenMLJSON},
		{"1.0", LwM2MJSON, LwM2MJSON},
		{"1.0", OldTLV, OldTLV},
		{"1.1", Format(9999), SenMLCBOR},
		{"1.1", Opaque, SenMLCBOR},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+tt.declared.String(), func(t *testing.T) {
			if got := Preferred(tt.version, tt.declared); got != tt.want {
				t.Fatalf("Preferred(%q, %v) = %v, want %v", tt.version, tt.declared, got, tt.want)
			}
		})
	}
}

func TestParseFormats(t *testing.T) {
	got := ParseFormats(`"60 110 112 x 11543"`)
	want := []Format{CBOR, SenMLJSON, SenMLCBOR, LwM2MJSON}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if f, err := ParseFormatName("senml_cbor"); err != nil || f != SenMLCBOR {
		t.Fatalf("ParseFormatName = %v, %v", f, err)
	}
	if _, err := ParseFormatName("XML"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ParseFormatName(XML) err = %v", err)
	}
}
