package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

const binariesPath = "/inventory/binaries"

// DefaultMaxBinarySize is the largest binary the API stores unless
// Config.MaxBinarySize says otherwise: firmware images of constrained
// devices are well below it.
const DefaultMaxBinarySize = 16 << 20

// maxObjectPart bounds the JSON "object" part of an upload.
const maxObjectPart = 64 << 10

func (a *API) maxBinarySize() int64 {
	if a.cfg.MaxBinarySize > 0 {
		return a.cfg.MaxBinarySize
	}
	return DefaultMaxBinarySize
}

func (a *API) binaryRoutes(auth func(string, func(http.ResponseWriter, *http.Request, store.User))) {
	auth("POST "+binariesPath, a.createBinary)
	auth("GET "+binariesPath, a.listBinaries)
	auth("GET "+binariesPath+"/{id}", a.getBinary)
	auth("DELETE "+binariesPath+"/{id}", a.deleteBinary)
}

// binaryJSON is a binary's managed object, as Cumulocity answers it: type
// is the content type, and c8y_IsBinary marks it.
func binaryJSON(r *http.Request, b store.Binary) map[string]any {
	m := make(map[string]any, len(b.Fragments)+10)
	for k, v := range b.Fragments {
		m[k] = v
	}
	m["id"] = b.ID
	m["name"] = b.Name
	m["type"] = b.ContentType
	m["contentType"] = b.ContentType
	m["length"] = b.Length
	m["owner"] = b.Owner
	m["creationTime"] = jsonTime(b.CreationTime)
	m["lastUpdated"] = jsonTime(b.LastUpdated)
	m["c8y_IsBinary"] = map[string]any{}
	m["self"] = self(r, binariesPath+"/"+escape(b.ID))
	return m
}

// createBinary stores a file from a multipart form: the part "object"
// (JSON: name, type as the content type, other members kept as
// fragments) and the part "file" with the bytes, which are streamed into
// the store chunk by chunk. The object part must come first; without
// one, the file part's file name and content type stand for it.
func (a *API) createBinary(w http.ResponseWriter, r *http.Request, u store.User) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, r, http.StatusUnsupportedMediaType, "inventory/unsupportedMediaType",
			"a binary is uploaded as multipart/form-data with the parts \"object\" and \"file\"")
		return
	}
	var b store.Binary
	haveObject := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			writeError(w, r, http.StatusBadRequest, "inventory/badRequest", "the upload has no part \"file\"")
			return
		}
		if err != nil {
			a.binaryUploadError(w, r, &clientError{fmt.Errorf("read upload: %w", err)})
			return
		}
		switch part.FormName() {
		case "object":
			if !a.readObjectPart(w, r, part, &b) {
				return
			}
			haveObject = true
		case "file":
			if !haveObject || b.Name == "" {
				b.Name = part.FileName()
			}
			if b.ContentType == "" {
				b.ContentType = part.Header.Get("Content-Type")
			}
			if b.Name == "" {
				writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable",
					"the binary needs a name: in the part \"object\" before the part \"file\", or as the file part's file name")
				return
			}
			b.Owner = u.UserName
			body := &readErrors{r: part}
			stored, err := a.cfg.Store.CreateBinary(r.Context(), u.Tenant, b, body, a.maxBinarySize())
			if err != nil {
				if body.err != nil {
					err = &clientError{err}
				}
				a.binaryUploadError(w, r, err)
				return
			}
			w.Header().Set("Location", self(r, binariesPath+"/"+escape(stored.ID)))
			writeJSON(w, http.StatusCreated, binaryJSON(r, stored))
			return
		default:
			// Cumulocity clients send "filesize" too; its value is not needed
			// as the limit is checked while the bytes arrive.
			_, _ = io.Copy(io.Discard, io.LimitReader(part, maxObjectPart))
		}
	}
}

// readObjectPart decodes the JSON object part into b; it answers the
// error itself and returns false on failure.
func (a *API) readObjectPart(w http.ResponseWriter, r *http.Request, part io.Reader, b *store.Binary) bool {
	const name = `the part "object"`
	raw, err := io.ReadAll(io.LimitReader(part, maxObjectPart+1))
	switch {
	case err != nil:
		writeError(w, r, http.StatusBadRequest, "inventory/badRequest", name+" cannot be read: "+err.Error())
		return false
	case len(raw) > maxObjectPart:
		writeError(w, r, http.StatusRequestEntityTooLarge, "inventory/tooLarge", fmt.Sprintf("%s is larger than %d bytes", name, maxObjectPart))
		return false
	}
	if !a.checkJSON(w, r, "inventory", name, raw) {
		return false
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		writeError(w, r, http.StatusBadRequest, "inventory/badRequest", name+" is not a JSON object: "+err.Error())
		return false
	}
	b.Name, _ = obj["name"].(string)
	b.ContentType, _ = obj["type"].(string)
	if ct, _ := obj["contentType"].(string); b.ContentType == "" {
		b.ContentType = ct
	}
	if b.ContentType != "" {
		if _, _, err := mime.ParseMediaType(b.ContentType); err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "inventory/unprocessable", fmt.Sprintf("type %q is not a media type", b.ContentType))
			return false
		}
	}
	b.Fragments = map[string]any{}
	for k, v := range obj {
		switch k {
		case "name", "type", "contentType", "id", "self", "length", "owner", "creationTime", "lastUpdated", "c8y_IsBinary":
		default:
			b.Fragments[k] = store.JSONNumbers(v)
		}
	}
	return true
}

// readErrors remembers the error of the upload's body other than its
// end, so that a broken upload (the client's fault) is told from a
// failing store.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// clientError marks an upload that failed on the client's side.
type clientError struct{ err error }

func (c *clientError) Error() string { return c.err.Error() }
func (c *clientError) Unwrap() error { return c.err }

// binaryUploadError answers a failed upload: 413 for one over the size
// limit (the store's or the request body's), 400 for a malformed body,
// else as any store error.
func (a *API) binaryUploadError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	var ce *clientError
	switch {
	case errors.Is(err, store.ErrTooLarge), errors.As(err, &mbe):
		writeError(w, r, http.StatusRequestEntityTooLarge, "inventory/tooLarge",
			fmt.Sprintf("a binary may hold at most %d bytes", a.maxBinarySize()))
	case r.Context().Err() != nil:
		// the client went away; nobody reads the answer
	case errors.As(err, &ce):
		writeError(w, r, http.StatusBadRequest, "inventory/badRequest", "the upload is not a valid multipart form: "+err.Error())
	default:
		a.storeError(w, r, "inventory", err)
	}
}

func (a *API) listBinaries(w http.ResponseWriter, r *http.Request, u store.User) {
	p, ok := paging(w, r, "inventory")
	if !ok {
		return
	}
	bins, total, err := a.cfg.Store.ListBinaries(r.Context(), u.Tenant, p)
	answerList(a, w, r, "inventory", "managedObjects", p, bins, total, err, binaryJSON)
}

// getBinary answers the bytes, streamed from the store a chunk at a time.
func (a *API) getBinary(w http.ResponseWriter, r *http.Request, u store.User) {
	b, rc, err := a.cfg.Store.OpenBinary(r.Context(), u.Tenant, r.PathValue("id"))
	if err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", b.ContentType)
	h.Set("Content-Length", strconv.FormatInt(b.Length, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": b.Name}))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
		// the status is out: all that is left is to cut the answer short
		a.log.Error("send binary", "binary", b.ID, "err", err)
	}
}

func (a *API) deleteBinary(w http.ResponseWriter, r *http.Request, u store.User) {
	if err := a.cfg.Store.DeleteBinary(r.Context(), u.Tenant, r.PathValue("id")); err != nil {
		a.storeError(w, r, "inventory", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkBinaries answers 422 for a writeb binary:<id> whose binary the
// tenant does not have, so that such an operation is refused when it is
// created rather than failing when the device is reached. It answers the
// error itself and returns false then.
func (a *API) checkBinaries(w http.ResponseWriter, r *http.Request, tenant string, cmds []shell.Command) bool {
	for _, c := range cmds {
		if c.Kind != shell.WriteBinary || c.Binary == "" {
			continue
		}
		_, err := a.cfg.Store.GetBinary(r.Context(), tenant, c.Binary)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, r, http.StatusUnprocessableEntity, "devicecontrol/unprocessable",
				fmt.Sprintf("%s: binary:%s: there is no such binary (POST /inventory/binaries stores one)", c.Raw, c.Binary))
			return false
		}
		if err != nil {
			a.storeError(w, r, "devicecontrol", err)
			return false
		}
	}
	return true
}
