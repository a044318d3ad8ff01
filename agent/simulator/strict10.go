package simulator

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// strict10 checks a write or create on p as Config.Strict10 asks: a
// create needs a payload, and LwM2M JSON must have the shape of the 1.0
// specification; others are refused with 4.00, as 1.0 clients that parse
// only that shape do. Without Strict10 everything passes.
func (d *Device) strict10(f codec.Format, p node.Path, body []byte) error {
	if !d.sim.cfg.Strict10 {
		return nil
	}
	if p.Depth == 1 && len(body) == 0 {
		return refuse(codes.BadRequest, "create without payload")
	}
	if f != codec.LwM2MJSON && f != codec.OldJSON {
		return nil
	}
	return checkJSON10(d.sim.objs, p, body)
}

type json10 struct {
	BN *string `json:"bn"`
	E  []struct {
		N  *string          `json:"n"`
		V  *json.Number     `json:"v"`
		SV *string          `json:"sv"`
		BV *bool            `json:"bv"`
		OV *string          `json:"ov"`
		T  *json.RawMessage `json:"t"`
	} `json:"e"`
}

// checkJSON10 is strictJSON's check: the base name is the object or the
// instance of p, ending in "/"; every entry names a resource below it in
// "n"; each value is in the field of its resource's type.
func checkJSON10(objs *objTable, p node.Path, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var in json10
	if err := dec.Decode(&in); err != nil {
		return refuse(codes.BadRequest, "lwm2m json: %v", err)
	}
	if in.BN == nil {
		return refuse(codes.BadRequest, "lwm2m json: no base name")
	}
	bn := *in.BN
	bp, err := node.ParsePath(bn)
	if err != nil || !strings.HasSuffix(bn, "/") || bp.Depth == 0 || bp.Depth > 2 || !bp.Contains(p) && !p.Contains(bp) {
		return refuse(codes.BadRequest, "lwm2m json: base name %q is not the object or instance of %v ending in /", bn, p)
	}
	for i, e := range in.E {
		if e.N == nil || *e.N == "" {
			return refuse(codes.BadRequest, "lwm2m json entry %d: no name: the resource goes in n", i)
		}
		rp, err := node.ParsePath(bn + *e.N)
		if err != nil || rp.Depth < 3 {
			return refuse(codes.BadRequest, "lwm2m json entry %d: name %q does not name a resource under %q", i, *e.N, bn)
		}
		rd, ok := objs.resDef(rp)
		if !ok {
			continue // the write itself answers 4.04
		}
		var field string
		switch rd.typ {
		case node.TypeInteger, node.TypeUnsignedInteger, node.TypeFloat, node.TypeTime:
			if e.V != nil {
				continue
			}
			field = "v"
		case node.TypeBoolean:
			if e.BV != nil {
				continue
			}
			field = "bv"
		case node.TypeObjlnk:
			if e.OV != nil {
				continue
			}
			field = "ov"
		default:
			if e.SV != nil {
				continue
			}
			field = "sv"
		}
		return refuse(codes.BadRequest, "lwm2m json entry %d: %v is %v: its value goes in %q", i, rp, rd.typ, field)
	}
	return nil
}
