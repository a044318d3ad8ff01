package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Device protocols (API.md, "LWM2M-specific resources").
//
// A tenant sees, for every object, its own protocol, else the management
// tenant's, else the built-in definition; answers say which with
// "inherited" and "owner". The definition itself changes only by uploading
// DDF again; functionalities and validation rules are set per resource.
// Setting them on an inherited protocol gives the tenant its own copy
// first (store.Protocols.SetFunctionality), so no tenant ever changes what
// another sees; deleting the copy inherits again.

const protocolsPath = "/lwm2m/deviceprotocols"

// Protocols are the device protocols the API serves, with the mapping
// layer's functionalities; the same value is the mapping pipeline's
// mapping.Source.
type Protocols = store.Protocols[mapping.Functionality]

type protocol = store.Protocol[mapping.Functionality]

var _ mapping.Source = (*Protocols)(nil)

func (a *API) protocolRoutes(auth func(string, func(http.ResponseWriter, *http.Request, store.User))) {
	auth("POST "+protocolsPath, a.uploadProtocols)
	auth("GET "+protocolsPath, a.listProtocols)
	auth("GET "+protocolsPath+"/{objectId}", a.getProtocol)
	auth("DELETE "+protocolsPath+"/{objectId}", a.deleteProtocol)
	auth("PUT "+protocolsPath+"/{objectId}/resources/{resourceId}/functionalities", a.putFunctionalities)
	auth("PUT "+protocolsPath+"/{objectId}/resources/{resourceId}/validation", a.putValidation)
}

// protocolJSON is the answer shape of a protocol as tenant sees it.
func protocolJSON(r *http.Request, tenant string, p protocol) map[string]any {
	o := p.Object
	res := make([]map[string]any, len(o.Resources))
	for i, d := range o.Resources {
		f := p.Functionalities[d.ID]
		m := map[string]any{
			"id": d.ID, "name": d.Name, "operations": d.Operations, "type": d.Type.String(), "unit": d.Units,
			"multiple": d.Multiple, "mandatory": d.Mandatory, "rangeEnumeration": d.RangeEnumeration,
			"description": d.Description, "functionalities": f,
		}
		if v, ok := p.Validation[d.ID]; ok {
			m["validation"] = v
		}
		res[i] = m
	}
	owner := p.Tenant
	if p.Builtin() {
		owner = store.SourceCore
	}
	out := map[string]any{
		"objectId": o.ID, "name": o.Name, "description": o.Description, "multipleInstances": o.Multiple,
		"mandatory": o.Mandatory, "urn": o.URN, "objectVersion": o.Version, "lwm2mVersion": o.LwM2MVersion,
		"source": p.Source, "owner": owner, "inherited": p.Tenant != tenant, "resources": res,
		"self": self(r, protocolsPath+"/"+strconv.Itoa(int(o.ID))),
	}
	if !p.Updated.IsZero() {
		out["lastUpdated"] = jsonTime(p.Updated)
	}
	return out
}

// ddfError is the 400 answer for a DDF document that cannot be stored:
// the Cumulocity error body with the place of the problem.
type ddfError struct {
	apiError
	Line    int    `json:"line,omitempty"`
	Element string `json:"element,omitempty"`
}

// uploadProtocols stores the objects of a DDF document (the body, or the
// multipart form field "file") as the tenant's protocols. The document is
// checked against LWM2M.xsd (1.0 or 1.1); ?lenient=true accepts what
// ParseDDF tolerates instead (elements out of order or missing where the
// meaning is clear), for registry files that do not follow the schema.
// Every object is checked before any is stored. ?source= names the file in
// the answers (default: the multipart file name, else "upload").
func (a *API) uploadProtocols(w http.ResponseWriter, r *http.Request, u store.User) {
	data, name, ok := a.ddfBody(w, r)
	if !ok {
		return
	}
	source := r.URL.Query().Get("source")
	if source == "" {
		source = name
	}
	if source == "" {
		source = "upload"
	}
	defs, err := model.ParseDDFWith(bytes.NewReader(data), model.Options{
		Strict: r.URL.Query().Get("lenient") != "true",
		Limits: model.Limits{Objects: a.limits.DDFObjects, Resources: a.limits.DDFResources},
	})
	if err != nil {
		var pe *model.ParseError
		var le *model.LimitError
		switch {
		case errors.As(err, &le):
			setting := settingOf[le.Cause]
			a.refused(r, le.Cause, setting)
			writeJSON(w, http.StatusUnprocessableEntity, ddfError{
				apiError: apiError{Error: "lwm2m/unprocessable", Message: le.Error() + " (" + setting + ")", Info: r.Method + " " + r.URL.Path},
				Line:     le.Line,
			})
		case errors.As(err, &pe):
			writeJSON(w, http.StatusBadRequest, ddfError{
				apiError: apiError{Error: "lwm2m/invalidDDF", Message: pe.Error(), Info: r.Method + " " + r.URL.Path},
				Line:     pe.Line, Element: pe.Element,
			})
		default:
			a.internal(w, r, err)
		}
		return
	}
	for _, d := range defs {
		if err := d.Validate(); err != nil {
			writeError(w, r, http.StatusBadRequest, "lwm2m/invalidDDF", err.Error())
			return
		}
	}
	items := make([]map[string]any, 0, len(defs))
	for _, d := range defs {
		p, err := a.cfg.Protocols.SaveProtocol(r.Context(), u.Tenant, d, source)
		if err != nil {
			a.storeError(w, r, "lwm2m", fmt.Errorf("object %d: %w", d.ID, err))
			return
		}
		items = append(items, protocolJSON(r, u.Tenant, p))
	}
	writeJSON(w, http.StatusCreated, map[string]any{"deviceProtocols": items})
}

// ddfBody reads the document: a multipart form's "file" field, or the
// body itself (any XML content type, or none). ok is false after an
// answered error.
func (a *API) ddfBody(w http.ResponseWriter, r *http.Request) (data []byte, name string, ok bool) {
	tooLarge := func(err error) bool {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			return false
		}
		a.refuse(w, r, http.StatusRequestEntityTooLarge, "lwm2m", causeBodySize, "--max-ddf-size",
			fmt.Sprintf("the document is larger than %d bytes", mbe.Limit))
		return true
	}
	var body io.Reader = r.Body
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(int64(a.limits.DDFSize)); err != nil {
			if !tooLarge(err) {
				writeError(w, r, http.StatusBadRequest, "lwm2m/badRequest", "the multipart form cannot be read: "+err.Error())
			}
			return nil, "", false
		}
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		f, hdr, err := r.FormFile("file")
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "lwm2m/badRequest", `the multipart form has no field "file"`)
			return nil, "", false
		}
		defer f.Close()
		body, name = f, path.Base(hdr.Filename)
	} else if jsonType(r.Header.Get("Content-Type")) && r.Header.Get("Content-Type") != "" {
		writeError(w, r, http.StatusUnsupportedMediaType, "lwm2m/unsupportedMediaType", "send the DDF XML document as the body (application/xml) or as multipart form field \"file\"")
		return nil, "", false
	}
	data, err := io.ReadAll(body)
	if err != nil {
		if !tooLarge(err) {
			writeError(w, r, http.StatusBadRequest, "lwm2m/badRequest", "the body cannot be read: "+err.Error())
		}
		return nil, "", false
	}
	return data, name, true
}

// listProtocols lists the protocols that apply to the tenant, its own and
// inherited ones, by object ID; ?inherited=false lists only its own.
func (a *API) listProtocols(w http.ResponseWriter, r *http.Request, u store.User) {
	p, ok := paging(w, r, "lwm2m")
	if !ok {
		return
	}
	inherited := true
	if s := r.URL.Query().Get("inherited"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", "inherited must be true or false, not "+strconv.Quote(s))
			return
		}
		inherited = b
	}
	ps, total, err := a.cfg.Protocols.ListProtocols(r.Context(), u.Tenant, store.ProtocolFilter{Inherited: inherited, Page: p})
	answerList(a, w, r, "lwm2m", "deviceProtocols", p, ps, total, err, func(r *http.Request, pr protocol) map[string]any {
		return protocolJSON(r, u.Tenant, pr)
	})
}

// pathID reads a path segment as an object or resource ID; an ID out of
// range names nothing, so it answers 404.
func pathID(w http.ResponseWriter, r *http.Request, name string) (uint16, bool) {
	s := r.PathValue(name)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n > 65534 {
		writeError(w, r, http.StatusNotFound, "lwm2m/Not Found", fmt.Sprintf("%s %q is not an ID from 0 to 65534", name, s))
		return 0, false
	}
	return uint16(n), true
}

func (a *API) getProtocol(w http.ResponseWriter, r *http.Request, u store.User) {
	id, ok := pathID(w, r, "objectId")
	if !ok {
		return
	}
	p, err := a.cfg.Protocols.Protocol(r.Context(), u.Tenant, id)
	answerOne(a, w, r, "lwm2m", p, err, func(r *http.Request, p protocol) map[string]any {
		return protocolJSON(r, u.Tenant, p)
	})
}

// deleteProtocol deletes the tenant's own protocol; the tenant then
// inherits again. An inherited protocol is not the tenant's to delete:
// 422, saying where it comes from.
func (a *API) deleteProtocol(w http.ResponseWriter, r *http.Request, u store.User) {
	id, ok := pathID(w, r, "objectId")
	if !ok {
		return
	}
	err := a.cfg.Protocols.DeleteProtocol(r.Context(), u.Tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		if p, perr := a.cfg.Protocols.Protocol(r.Context(), u.Tenant, id); perr == nil {
			from := "the management tenant"
			if p.Builtin() {
				from = "the built-in definitions"
			}
			writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable",
				fmt.Sprintf("object %d is inherited from %s; only a tenant's own protocol can be deleted", id, from))
			return
		}
	}
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readStrictJSON decodes a JSON body refusing unknown members: a
// misspelled "measurment" must not be dropped silently. ok is false after
// an answered error.
func (a *API) readStrictJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !jsonType(r.Header.Get("Content-Type")) {
		writeError(w, r, http.StatusUnsupportedMediaType, "lwm2m/unsupportedMediaType",
			"content type "+r.Header.Get("Content-Type")+" is not JSON")
		return false
	}
	data, ok := a.readBody(w, r, "lwm2m")
	if !ok || !a.checkJSON(w, r, "lwm2m", "", data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return true
	}
	var ute *json.UnmarshalTypeError
	if strings.HasPrefix(err.Error(), "json: unknown field") || errors.As(err, &ute) {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", strings.TrimPrefix(err.Error(), "json: "))
		return false
	}
	writeError(w, r, http.StatusBadRequest, "lwm2m/badRequest", "the body is not valid JSON: "+err.Error())
	return false
}

// resourceDefined answers, when the tenant has no definition of the
// object, 422 saying how to give it one, and 404 for a resource the
// definition lacks; ok is false after an answer. Configuring an object
// nobody described is the mistake of someone who has not uploaded its
// DDF yet: the answer says so instead of a bare "not found".
func (a *API) resourceDefined(w http.ResponseWriter, r *http.Request, u store.User, oid, rid uint16) bool {
	p, err := a.cfg.Protocols.Protocol(r.Context(), u.Tenant, oid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", fmt.Sprintf(
			"object %d has no device protocol: upload its object definition (DDF XML) first, "+
				"POST %s with the DDF file as the body (or `lwm2m-agent import protocols FILE`), then set its resources' functionalities and validation",
			oid, protocolsPath))
		return false
	case err != nil:
		a.storeError(w, r, "lwm2m", err)
		return false
	}
	if _, ok := p.Object.Resource(rid); !ok {
		writeError(w, r, http.StatusNotFound, "lwm2m/Not Found", fmt.Sprintf("object %d (%s) has no resource %d", oid, p.Object.Name, rid))
		return false
	}
	return true
}

// putFunctionalities sets what happens to one resource's values; {}
// removes it.
func (a *API) putFunctionalities(w http.ResponseWriter, r *http.Request, u store.User) {
	oid, ok := pathID(w, r, "objectId")
	if !ok {
		return
	}
	rid, ok := pathID(w, r, "resourceId")
	if !ok {
		return
	}
	if !a.resourceDefined(w, r, u, oid, rid) {
		return
	}
	var f mapping.Functionality
	if !a.readStrictJSON(w, r, &f) {
		return
	}
	err := f.Validate()
	if err == nil {
		// Only a new write is checked: protocols stored before the
		// plugins file changed still load, and their values raise the
		// mapping alarm instead.
		err = mapping.CheckPlugins(f, a.cfg.Plugins)
	}
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", err.Error())
		return
	}
	p, err := a.cfg.Protocols.SetFunctionality(r.Context(), u.Tenant, oid, rid, f)
	answerOne(a, w, r, "lwm2m", p, err, func(r *http.Request, p protocol) map[string]any {
		return protocolJSON(r, u.Tenant, p)
	})
}

// putValidation sets the validation rules of one writable resource;
// {"groups":[]} removes them.
func (a *API) putValidation(w http.ResponseWriter, r *http.Request, u store.User) {
	oid, ok := pathID(w, r, "objectId")
	if !ok {
		return
	}
	rid, ok := pathID(w, r, "resourceId")
	if !ok {
		return
	}
	if !a.resourceDefined(w, r, u, oid, rid) {
		return
	}
	var body struct {
		Groups *[][]store.ValidationRule `json:"groups"`
	}
	if !a.readStrictJSON(w, r, &body) {
		return
	}
	if body.Groups == nil {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", `the body needs "groups": a list of groups of rules ([] removes the rules)`)
		return
	}
	rules := store.ValidationRules{Groups: *body.Groups}
	if err := rules.Check(); err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", err.Error())
		return
	}
	p, err := a.cfg.Protocols.SetValidation(r.Context(), u.Tenant, oid, rid, rules)
	answerOne(a, w, r, "lwm2m", p, err, func(r *http.Request, p protocol) map[string]any {
		return protocolJSON(r, u.Tenant, p)
	})
}
