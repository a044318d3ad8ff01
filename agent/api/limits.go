package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/jsonlimit"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
)

// Limits bound what one request may make the agent read, store and wait
// for, so that one tenant cannot slow the others: JSON nested 10,000 deep
// took 30 s a request, documents of 300,000 empty objects made every
// tenant's device list take seconds, and a 63 MB registration file of
// separators took 1.8 GB. Each is checked before the work it bounds,
// answered 413 (a size) or 422 (a structure) naming the limit's setting,
// and counted in lwm2m_agent_refused_total. Zero fields take
// DefaultLimits.
type Limits struct {
	DocumentSize int // bytes of a JSON body (--max-document-size)
	JSONDepth    int // --max-json-depth
	JSONMembers  int // members of one object (--max-json-members)
	JSONArray    int // elements of one array (--max-json-array)
	JSONValues   int // members and elements of a body in all (--max-json-values)
	FragmentSize int // bytes of one top-level member's value (--max-fragment-size)
	DDFSize      int // bytes of a DDF upload (--max-ddf-size)
	DDFObjects   int // --max-ddf-objects
	DDFResources int // resources of one object (--max-ddf-resources)
	CSVLineSize  int // bytes of one record of a registration file (--max-csv-line-size)
	CSVFields    int // fields of one record (--max-csv-fields)
	// StoreTimeout bounds the store's time for one request
	// (--store-request-timeout); see untimed.
	StoreTimeout time.Duration
}

// DefaultLimits are the agent's defaults (config.Default).
var DefaultLimits = Limits{
	DocumentSize: 1 << 20, JSONDepth: 32, JSONMembers: 1000, JSONArray: 10_000, JSONValues: 20_000,
	FragmentSize: 256 << 10, DDFSize: 4 << 20, DDFObjects: 100, DDFResources: 1000,
	CSVLineSize: 64 << 10, CSVFields: 1000, StoreTimeout: 10 * time.Second,
}

func orDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, d *int }{
		{&l.DocumentSize, &d.DocumentSize}, {&l.JSONDepth, &d.JSONDepth}, {&l.JSONMembers, &d.JSONMembers},
		{&l.JSONArray, &d.JSONArray}, {&l.JSONValues, &d.JSONValues}, {&l.FragmentSize, &d.FragmentSize},
		{&l.DDFSize, &d.DDFSize}, {&l.DDFObjects, &d.DDFObjects}, {&l.DDFResources, &d.DDFResources},
		{&l.CSVLineSize, &d.CSVLineSize}, {&l.CSVFields, &d.CSVFields},
	} {
		orDefault(f.v, *f.d)
	}
	orDefault(&l.StoreTimeout, d.StoreTimeout)
	l.DDFSize = min(l.DDFSize, model.MaxDDFSize)
	return l
}

// Refusal causes of the API besides those of jsonlimit, model and
// registry.
const (
	causeBodySize     = "body_size"
	causeStoreTimeout = "store_timeout"
)

// settingOf names the setting of each limit, as answers and the log name
// it.
var settingOf = map[string]string{
	jsonlimit.CauseDepth:    "--max-json-depth",
	jsonlimit.CauseMembers:  "--max-json-members",
	jsonlimit.CauseArray:    "--max-json-array",
	jsonlimit.CauseValues:   "--max-json-values",
	jsonlimit.CauseFragment: "--max-fragment-size",
	model.CauseObjects:      "--max-ddf-objects",
	model.CauseResources:    "--max-ddf-resources",
	registry.CauseLine:      "--max-csv-line-size",
	registry.CauseFields:    "--max-csv-fields",
	causeStoreTimeout:       "--store-request-timeout",
}

// refused counts and logs one request a limit refused.
func (a *API) refused(r *http.Request, cause, setting string) {
	user, _, _ := r.BasicAuth()
	tenant, _, _ := strings.Cut(user, "/")
	a.cfg.Refused.Refuse(cause, setting, "tenant", tenant, "method", r.Method, "route", r.Pattern)
}

// refuse answers a request a limit refused, naming the limit's setting,
// and counts it.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, code int, area, cause, setting, msg string) {
	a.refused(r, cause, setting)
	kind := "unprocessable"
	switch code {
	case http.StatusRequestEntityTooLarge:
		kind = "tooLarge"
	case http.StatusServiceUnavailable:
		kind = "serviceUnavailable"
	}
	writeError(w, r, code, area+"/"+kind, msg+" ("+setting+")")
}

// readBody reads a JSON body of at most Limits.DocumentSize bytes; ok is
// false after an answered error.
func (a *API) readBody(w http.ResponseWriter, r *http.Request, area string) ([]byte, bool) {
	data, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		a.refuse(w, r, http.StatusRequestEntityTooLarge, area, causeBodySize, "--max-document-size",
			fmt.Sprintf("the body is larger than %d bytes", mbe.Limit))
		return nil, false
	case err != nil:
		writeError(w, r, http.StatusBadRequest, area+"/badRequest", "the body cannot be read: "+err.Error())
		return nil, false
	}
	return data, true
}

// checkJSON checks a JSON document against the limits and its member
// names before it is decoded; ok is false after an answered error. part
// names the document when it is not the body.
func (a *API) checkJSON(w http.ResponseWriter, r *http.Request, area, part string, data []byte) bool {
	err := jsonlimit.Check(data, a.jsonLimits)
	if err == nil {
		return true
	}
	prefix := ""
	if part != "" {
		prefix = part + ": "
	}
	var le *jsonlimit.LimitError
	var ne *jsonlimit.NameError
	switch {
	case errors.As(err, &le):
		code := http.StatusUnprocessableEntity
		if le.Cause == jsonlimit.CauseFragment {
			code = http.StatusRequestEntityTooLarge
		}
		a.refuse(w, r, code, area, le.Cause, settingOf[le.Cause], prefix+le.Error())
	case errors.As(err, &ne):
		writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", fmt.Sprintf(
			"%s%v; names must be non-empty, at most %d bytes, without '.', NUL and a leading '$'", prefix, ne, MaxNameLength))
	default:
		if part == "" {
			part = "the body"
		}
		writeError(w, r, http.StatusBadRequest, area+"/badRequest", part+" is not valid JSON: "+err.Error())
	}
	return false
}

// errStoreTimeout is the cause of a request's context that ran out of
// Limits.StoreTimeout.
var errStoreTimeout = errors.New("the store request timeout passed")

// untimed are the routes whose store time is bounded by their size, not
// by Limits.StoreTimeout: a registration file of 100,000 devices takes
// minutes, and a binary streams as fast as its client.
var untimed = map[string]bool{
	"POST " + bulkPath:              true,
	"POST " + binariesPath:          true,
	"GET " + binariesPath + "/{id}": true,
}

// withStoreTimeout bounds the store's time for r.
func (a *API) withStoreTimeout(r *http.Request) (*http.Request, context.CancelFunc) {
	if untimed[r.Pattern] {
		return r, func() {}
	}
	ctx, cancel := context.WithTimeoutCause(r.Context(), a.limits.StoreTimeout, errStoreTimeout)
	return r.WithContext(ctx), cancel
}

// storeTimedOut answers 503 when r's store time ran out, whatever the
// store's error says of it, and reports whether it did.
func (a *API) storeTimedOut(w http.ResponseWriter, r *http.Request, area string) bool {
	if !errors.Is(context.Cause(r.Context()), errStoreTimeout) {
		return false
	}
	a.refuse(w, r, http.StatusServiceUnavailable, area, causeStoreTimeout, settingOf[causeStoreTimeout],
		fmt.Sprintf("the store took longer than %v for this request; try again, or ask for less (a smaller page, a narrower filter)", a.limits.StoreTimeout))
	return true
}
