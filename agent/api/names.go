package api

import (
	"errors"
	"fmt"
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
