package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ProtocolRecord is a tenant's device protocol as engines store it
// (ProtocolRecords). What the protocol holds is JSON, each a JSON
// object, which the engines keep as they are given it and answer as
// equivalent JSON (not byte for byte: an engine may store it in another
// form, as MongoDB does in BSON).
type ProtocolRecord struct {
	Tenant   string
	ObjectID uint16
	// Source is where the definition came from (see Protocol.Source).
	Source  string
	Updated time.Time
	// Definition is the object's definition, Functionalities and
	// Validation are by resource ID; empty means {}.
	Definition, Functionalities, Validation json.RawMessage
}

// Check returns r as an engine stores it, its JSON compacted and empty
// JSON made {}; ErrInvalid for a record without tenant, for JSON that is
// not an object, and for a member name that starts with '$' anywhere in
// it, which MongoDB would read as a value of another type (a date, a
// long) rather than as a member.
func (r ProtocolRecord) Check() (ProtocolRecord, error) {
	if r.Tenant == "" {
		return ProtocolRecord{}, fmt.Errorf("%w: protocol record %d without tenant", ErrInvalid, r.ObjectID)
	}
	for _, f := range []struct {
		name string
		v    *json.RawMessage
	}{{"definition", &r.Definition}, {"functionalities", &r.Functionalities}, {"validation", &r.Validation}} {
		v, err := jsonObject(*f.v)
		if err != nil {
			return ProtocolRecord{}, fmt.Errorf("%w: protocol record %d of %s: %s: %w", ErrInvalid, r.ObjectID, r.Tenant, f.name, err)
		}
		*f.v = v
	}
	return r, nil
}

func jsonObject(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if buf.Bytes()[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := noDollarNames(json.NewDecoder(bytes.NewReader(buf.Bytes()))); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// noDollarNames reads one JSON value and refuses a member name in it
// that starts with '$'.
func noDollarNames(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for dec.More() {
		if d == '{' {
			name, err := dec.Token()
			if err != nil {
				return err
			}
			if s, _ := name.(string); strings.HasPrefix(s, "$") {
				return fmt.Errorf("member name %q starts with '$'", s)
			}
		}
		if err := noDollarNames(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
