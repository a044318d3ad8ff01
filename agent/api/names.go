package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Names a request gives become member names of stored documents, or field
// paths of the database's filters: a name starting with '$' is an operator
// to the database ($where, $or), a '.' walks into a sub-document, and
// neither can be stored as a plain member. Such names are refused with 422
// before the store sees them, rather than failing there with a 500 or
// matching something else than asked.

// MaxNameLength bounds a member or field name. Real fragment and series
// names are a few dozen bytes; a longer one only makes indexes and
// filters larger.
const MaxNameLength = 256

// MaxBodyDepth bounds how deep a request body nests objects and lists.
// MongoDB refuses documents nested deeper than 100 levels, and a stored
// body sits a level or two below the document's top; no fragment the API
// knows comes near this.
const MaxBodyDepth = 64

// checkName reports why s cannot be a single member name, or nil.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("it is empty")
	case len(s) > MaxNameLength:
		return fmt.Errorf("it is longer than %d bytes", MaxNameLength)
	case strings.HasPrefix(s, "$"):
		return errors.New("it starts with '$'")
	case strings.Contains(s, "."):
		return errors.New("it contains '.'")
	case strings.ContainsRune(s, 0):
		return errors.New("it contains a NUL byte")
	}
	return nil
}

// nameParams checks the query parameters that name a fragment or series;
// on a bad one it has answered 422 naming it and returns false.
func nameParams(w http.ResponseWriter, r *http.Request, area string, params ...string) bool {
	q := r.URL.Query()
	for _, p := range params {
		if !q.Has(p) {
			continue
		}
		s := q.Get(p)
		if err := checkName(s); err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", fmt.Sprintf(
				"%s %s is not a fragment or series name: %v", p, strconv.Quote(s), err))
			return false
		}
	}
	return true
}

// checkMembers checks every member name of a JSON body, at every depth,
// and the body's depth. raw must be valid JSON.
func checkMembers(raw []byte) error {
	type frame struct {
		object  bool
		wantKey bool
		key     string
	}
	var stack []frame
	where := func(k string) string {
		var path []string
		for _, f := range stack {
			if f.object && f.key != "" {
				path = append(path, f.key)
			}
		}
		return strings.Join(append(path, k), " > ")
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the body cannot be read: %w", err)
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if k, ok := tok.(string); ok {
				// The previous sibling's name is no part of this
				// one's path.
				stack[n-1].key = ""
				if err := checkName(k); err != nil {
					return fmt.Errorf("member name %s (at %s) is not accepted: %v; names must be non-empty, at most %d bytes, without '.', NUL and a leading '$'",
						strconv.Quote(k), where(k), err, MaxNameLength)
				}
				stack[n-1].key, stack[n-1].wantKey = k, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= MaxBodyDepth {
				return fmt.Errorf("the body nests deeper than %d levels", MaxBodyDepth)
			}
			stack = append(stack, frame{object: tok == json.Delim('{'), wantKey: tok == json.Delim('{')})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}
