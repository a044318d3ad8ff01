// Package api serves the agent's REST API: the Cumulocity-shaped resources
// (inventory, identity, measurements, events, alarms, device control,
// tenants) and the LwM2M-specific ones, over net/http, with HTTP Basic
// authentication as "tenant/user:password". Everything it reads and writes
// goes through the store; operations are handed to an OperationRunner.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/jsonlimit"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/validation"
)

// ModelSource answers object definitions for the objects view;
// *model.Registry implements it.
type ModelSource interface {
	ObjectFor(tenant string, id uint16) (model.ObjectDef, bool)
}

// OperationRunner delivers operations. Submit is called once per
// operation, after it is stored PENDING; the runner sends it when the
// device is reachable and records the outcome in the store. Submit must
// not block for long: it runs inside the HTTP request, with a context that
// outlives it.
type OperationRunner interface {
	Submit(ctx context.Context, tenant string, op store.Operation)
}

// RegistrationSource reports the object links of a device's live
// registration. The objects view uses the lwm2m.objects fragment of the
// device and needs it only where that fragment is not kept up to date.
type RegistrationSource interface {
	Objects(tenant, deviceID string) ([]string, bool)
}

// SecurityChanges hears of a device whose security mode, PSK key or PSK
// identity changed, so that its live registrations, made under the old
// ones, end. oldIdentity is the lwm2m PSK identity the device had, ""
// for none: sessions opened with it must end too. It hears of a deleted
// device too, whose live registrations of its endpoints and sessions of
// its lwm2m PSK identities end.
type SecurityChanges interface {
	SecurityChanged(ctx context.Context, tenant, deviceID, endpoint, oldIdentity string)
	DeviceDeleted(ctx context.Context, tenant, deviceID string, endpoints, identities []string)
}

// Config wires the API to the rest of the agent. Store is required.
type Config struct {
	Store         store.Engine
	Models        ModelSource        // may be nil: every resource is then "raw"
	Ops           OperationRunner    // may be nil: operations stay PENDING
	Bulk          BulkScheduler      // may be nil: a new bulk operation waits for the scheduler's poll
	Registrations RegistrationSource // may be nil
	Security      SecurityChanges    // may be nil: live registrations outlast a change of keys or a deletion
	// Protocols serves the device protocols; nil makes one over Store.
	// Share one value with the mapping pipeline, so that a change through
	// the API reaches the pipeline's cache at once.
	Protocols *Protocols
	// Plugins are the configured plugins: a functionality's customAction
	// may name only those (decoder:<name>, plugin:<name>). nil: the
	// agent has none, and such a functionality is refused.
	Plugins mapping.PluginNames
	Metrics *prometheus.Registry
	Logger  *slog.Logger

	// MaxRequestTimeout caps the lwm2mRequestTimeout of a device's
	// registration parameters, in the bulk file and the bootstrap
	// resource alike; zero takes registry.DefaultMaxRequestTimeout.
	MaxRequestTimeout time.Duration
	// CredentialsHashCost is the bcrypt cost of the CREDENTIALS stored by
	// bulk registration; zero takes bcrypt.DefaultCost.
	CredentialsHashCost int
	// MaxBinarySize bounds one binary of POST /inventory/binaries, in
	// bytes; zero takes DefaultMaxBinarySize.
	MaxBinarySize int64
	// FirmwareMaxSize bounds the agent binary a firmware update names, in
	// bytes; zero: no bound.
	FirmwareMaxSize int64
	// LoginThrottle slows repeated wrong credentials down; its zero value
	// takes the defaults.
	LoginThrottle LoginThrottle
	// ImportWorkers bounds how many lines of a bulk file are hashed and
	// stored at once; zero takes importWorkers. Hashing is bounded by
	// GOMAXPROCS on its own; the other workers wait on the store
	// meanwhile, and their writes are what the store commits together:
	// the more lines in flight, the fewer commits per line.
	ImportWorkers int
	// ExternalURL is the base of every link in answers (self, next,
	// prev): scheme, host and an optional path prefix, as clients reach
	// the API. Empty takes the address each connection came in on.
	ExternalURL string
	// Limits bound what one request may make the agent read, store and
	// wait for; zero fields take DefaultLimits.
	Limits Limits
	// Refused counts and logs what the limits refuse; nil counts nothing.
	Refused *refusal.Log
	// PluginStatus answers GET /lwm2m/plugins; nil: the agent has no
	// plugins, and the list is empty.
	PluginStatus PluginStatus
	// Readiness answers GET /health/ready: nil when the agent should
	// receive traffic, a NotReady (or any error, taken as the store's)
	// when not. nil: always ready.
	Readiness func(ctx context.Context) error
	// Console is the web console, served at its Patterns beside the
	// API's routes (the console package's); nil serves none, and "/"
	// keeps the JSON 404.
	Console Console
}

// Console is a handler that answers the requests of its own mux patterns.
type Console interface {
	http.Handler
	Patterns() []string
}

// formSlack is what a binary's upload may hold beside the file: the
// "object" part and the multipart framing.
const formSlack = 1 << 20

// API is the HTTP API.
type API struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec

	validator *validation.Validator // checks writes before they are queued
	logins    *throttle

	limits     Limits
	jsonLimits jsonlimit.Limits
}

// New builds the API; Handler serves it.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.CredentialsHashCost == 0 {
		cfg.CredentialsHashCost = bcrypt.DefaultCost
	}
	// Links append paths that start with a slash.
	cfg.ExternalURL = strings.TrimRight(cfg.ExternalURL, "/")
	if cfg.Protocols == nil {
		cfg.Protocols = store.NewProtocols[mapping.Functionality](cfg.Store)
	}
	if cfg.ImportWorkers <= 0 {
		cfg.ImportWorkers = importWorkers
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux(), limits: cfg.Limits.withDefaults()}
	a.jsonLimits = jsonlimit.Limits{
		Depth: a.limits.JSONDepth, Members: a.limits.JSONMembers, Array: a.limits.JSONArray,
		Values: a.limits.JSONValues, Fragment: a.limits.FragmentSize, Name: checkName,
	}
	a.validator = validation.New(validation.Config{Rules: cfg.Protocols, Values: cfg.Store, Logger: cfg.Logger})
	a.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "lwm2m_agent", Subsystem: "http", Name: "requests_total",
		Help: "HTTP API requests by method, route and status code.",
	}, []string{"method", "route", "code"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "lwm2m_agent", Subsystem: "http", Name: "request_duration_seconds",
		Help: "HTTP API request latency by method and route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	}, []string{"method", "route"})
	throttled := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "lwm2m_agent", Subsystem: "http", Name: "logins_throttled_total",
		Help: "HTTP API requests answered 429 without a password check, after repeated wrong credentials from their address or for their user.",
	})
	a.logins = newThrottle(cfg.LoginThrottle, a.log, throttled)
	for _, c := range []prometheus.Collector{a.reqs, a.latency, throttled} {
		if err := cfg.Metrics.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				a.log.Error("register metrics", "err", err)
			}
		}
	}
	a.routes()
	return a
}

// registryOptions bound what registration parameters the API accepts.
func (a *API) registryOptions() registry.Options {
	return registry.Options{
		MaxRequestTimeout: a.cfg.MaxRequestTimeout, MaxBytes: MaxBulkBody,
		MaxLineBytes: a.limits.CSVLineSize, MaxFields: a.limits.CSVFields,
	}
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler {
	h := http.Handler(a.mux)
	if base := a.cfg.ExternalURL; base != "" {
		mux := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), baseKey{}, base)))
		})
	}
	return a.instrument(h)
}

func (a *API) routes() {
	m := a.mux
	a.healthRoutes(m)
	// Metrics carry no tenant data; scrapers usually come without
	// credentials.
	m.Handle("GET /metrics", promhttp.HandlerFor(a.cfg.Metrics, promhttp.HandlerOpts{}))

	auth := func(pattern string, h func(w http.ResponseWriter, r *http.Request, u store.User)) {
		m.Handle(pattern, a.authenticated(h))
	}
	auth("POST /tenant/tenants", a.createTenant)
	auth("GET /tenant/tenants", a.listTenants)

	auth("GET /inventory/managedObjects", a.listManagedObjects)
	auth("POST /inventory/managedObjects", a.createManagedObject)
	auth("GET /inventory/managedObjects/{id}", a.getManagedObject)
	auth("PUT /inventory/managedObjects/{id}", a.updateManagedObject)
	auth("DELETE /inventory/managedObjects/{id}", a.deleteManagedObject)
	a.referenceRoutes(auth)

	auth("GET /identity/externalIds/{type}/{externalId}", a.getExternalID)
	auth("DELETE /identity/externalIds/{type}/{externalId}", a.deleteExternalID)
	auth("GET /identity/globalIds/{id}/externalIds", a.listExternalIDs)
	auth("POST /identity/globalIds/{id}/externalIds", a.createExternalID)

	auth("GET /measurement/measurements", a.listMeasurements)
	auth("POST /measurement/measurements", a.createMeasurement)
	auth("GET /measurement/measurements/{id}", a.getMeasurement)
	auth("GET /event/events", a.listEvents)
	auth("GET /event/events/{id}", a.getEvent)
	auth("GET /alarm/alarms", a.listAlarms)
	auth("GET /alarm/alarms/{id}", a.getAlarm)
	auth("PUT /alarm/alarms/{id}", a.updateAlarm)

	auth("POST "+bulkPath, a.bulkRegister)
	auth("POST /devicecontrol/operations", a.createOperations)
	auth("GET /devicecontrol/operations", a.listOperations)
	auth("GET /devicecontrol/operations/{id}", a.getOperation)
	auth("PUT /devicecontrol/operations/{id}", a.updateOperation)
	a.bulkOperationRoutes(auth)

	auth("GET /lwm2m/devices/{id}/objects", a.objectsView)
	auth("GET /lwm2m/devices/{id}/audit", a.audit)
	auth("POST /lwm2m/devices/{id}/audit/sync", a.auditSync)
	auth("GET /lwm2m/devices/{id}/bootstrap", a.getBootstrap)
	auth("PUT /lwm2m/devices/{id}/bootstrap", a.putBootstrap)
	auth("GET "+postOpsPath, a.getPostOperations)
	auth("PUT "+postOpsPath, a.putPostOperations)
	auth("GET "+pluginsPath, a.listPlugins)
	a.protocolRoutes(auth)
	a.binaryRoutes(auth)
	if a.cfg.Console != nil {
		for _, p := range a.cfg.Console.Patterns() {
			m.Handle(p, a.cfg.Console)
		}
	}

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "general/notFound", "no resource at "+r.URL.Path)
	})
}

// statusRecorder remembers the status code for the request metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *API) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		if r.Body != nil {
			limit := int64(a.limits.DocumentSize)
			switch r.URL.Path {
			case bulkPath:
				limit = MaxBulkBody
			case protocolsPath:
				limit = int64(a.limits.DDFSize)
			case binariesPath:
				// the store checks the file's own limit as it arrives; this
				// one leaves room for the form around it
				limit = a.maxBinarySize() + formSlack
			}
			r.Body = http.MaxBytesReader(rec, r.Body, limit)
		}
		next.ServeHTTP(rec, r)
		route := r.Pattern // set by the mux on this same request
		if route == "" || route == "/" {
			route = "unmatched"
		} else if _, p, ok := strings.Cut(route, " "); ok {
			route = p
		}
		a.reqs.WithLabelValues(r.Method, route, strconv.Itoa(rec.code)).Inc()
		a.latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

// authenticated checks HTTP Basic credentials "tenant/user:password".
func (a *API) authenticated(h func(http.ResponseWriter, *http.Request, store.User)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, pass, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, r, "credentials are needed as HTTP Basic tenant/user:password")
			return
		}
		r, cancel := a.withStoreTimeout(r)
		defer cancel()
		u, err := a.Login(r, name, pass)
		var throttled *ThrottledError
		switch {
		case errors.Is(err, ErrNoTenant):
			unauthorized(w, r, "credentials are needed as HTTP Basic tenant/user:password")
		case errors.As(err, &throttled):
			w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
			writeError(w, r, http.StatusTooManyRequests, "security/TooManyRequests", throttled.Error())
		case errors.Is(err, store.ErrUnauthorized):
			unauthorized(w, r, "invalid credentials")
		case err != nil:
			a.internal(w, r, err)
		default:
			h(w, r, u)
		}
	})
}

// ErrNoTenant refuses a login that is not "tenant/user".
var ErrNoTenant = errors.New(`credentials are needed as "tenant/user" and a password`)

// ThrottledError refuses a login without a password check, after
// repeated wrong credentials from its address or for its user.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return "too many wrong credentials from this address or for this user: try again in " + retryAfter(e.RetryAfter) + " s"
}

// Login checks the credentials of a request, login being
// "tenant/user", as every API request's Basic authentication is checked:
// with the same users and the same throttle of repeated wrong
// credentials per source address and per user. Other ways in (the
// realtime notifications, whose credentials may come inside their
// messages) use it, so that none of them is a way round the throttle.
// It answers ErrNoTenant, a *ThrottledError, an error wrapping
// store.ErrUnauthorized, or the store's failure.
func (a *API) Login(r *http.Request, login, password string) (store.User, error) {
	tenant, user, hasTenant := strings.Cut(login, "/")
	if !hasTenant || tenant == "" || user == "" {
		return store.User{}, ErrNoTenant
	}
	addr, key := sourceAddr(r), tenant+"/"+user
	if d := a.logins.wait(addr, key); d > 0 {
		return store.User{}, &ThrottledError{RetryAfter: d}
	}
	u, err := a.cfg.Store.Login(r.Context(), tenant, user, password)
	if errors.Is(err, store.ErrUnauthorized) {
		a.logins.failed(addr, key)
		return store.User{}, err
	}
	if err != nil {
		return store.User{}, err
	}
	a.logins.succeeded(addr, key)
	return u, nil
}

func unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="lwm2m-agent"`)
	writeError(w, r, http.StatusUnauthorized, "security/Unauthorized", msg)
}

// apiError is the Cumulocity error body.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Info    string `json:"info"`
}

func writeError(w http.ResponseWriter, r *http.Request, code int, kind, msg string) {
	writeJSON(w, code, apiError{Error: kind, Message: msg, Info: r.Method + " " + r.URL.Path})
}

func (a *API) internal(w http.ResponseWriter, r *http.Request, err error) {
	if a.storeTimedOut(w, r, "general") {
		return
	}
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, r, http.StatusInternalServerError, "general/internalError", "internal error; see the agent's log")
}

// storeError answers a store error with the matching status.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, area string, err error) {
	switch {
	case a.storeTimedOut(w, r, area): // answered
	case errors.Is(err, store.ErrNotFound):
		writeError(w, r, http.StatusNotFound, area+"/Not Found", "not found: "+r.URL.Path)
	case errors.Is(err, store.ErrConflict):
		writeError(w, r, http.StatusConflict, area+"/Duplicate", err.Error())
	case errors.Is(err, store.ErrInvalid):
		writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", err.Error())
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		a.internal(w, r, err)
	}
}

// secret reports whether a member carries a credential (render.Secret):
// credentials are write-only, and every answer goes through scrub.
func secret(name string) bool { return render.Secret(name) }

func scrub(v any) { render.Scrub(v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	scrub(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// jsonType accepts application/json and the Cumulocity media types
// application/vnd.com.nsn.cumulocity.<type>+json.
func jsonType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/vnd.com.nsn.cumulocity.") && strings.HasSuffix(mt, "+json"))
}

// readJSON decodes a JSON body after checking it against the limits; it
// answers the error itself and returns false on failure.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request, area string, v any) bool {
	if !jsonType(r.Header.Get("Content-Type")) {
		writeError(w, r, http.StatusUnsupportedMediaType, area+"/unsupportedMediaType",
			"content type "+r.Header.Get("Content-Type")+" is not JSON")
		return false
	}
	data, ok := a.readBody(w, r, area)
	if !ok || !a.checkJSON(w, r, area, "", data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeError(w, r, http.StatusBadRequest, area+"/badRequest", "the body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// baseKey is the context key of the base URL of links (Config.ExternalURL).
type baseKey struct{}

// baseURL is the base of every link: Config.ExternalURL, or else the
// address the connection came in on. The Host and X-Forwarded-* headers
// are the client's to choose: links built from them would send the next
// request, credentials included, wherever a client or cache poisoner said.
func baseURL(r *http.Request) string {
	if b, _ := r.Context().Value(baseKey{}).(string); b != "" {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := "127.0.0.1"
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		host = a.String()
	}
	return scheme + "://" + host
}

func self(r *http.Request, path string) string { return baseURL(r) + path }

// MaxPageOffset bounds how many objects a page may skip, (currentPage-1) *
// pageSize. Unbounded, the product overflows: the store's skip wraps round
// to a negative or small number (a database error, or the first page
// again) and the device-protocol list, which pages in memory, panics.
// 2³¹−1 is far beyond any list a tenant holds and fits an int on every
// platform.
const MaxPageOffset = math.MaxInt32

// paging reads pageSize, currentPage and withTotalPages. Both numbers must
// be positive integers; a pageSize above store.MaxPageSize is served as
// store.MaxPageSize, and currentPage is bounded by MaxPageOffset. The
// checks come before any store work, for every list.
func paging(w http.ResponseWriter, r *http.Request, area string) (store.Page, bool) {
	q := r.URL.Query()
	p := store.Page{Size: store.DefaultPageSize, Current: 1}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"pageSize", &p.Size}, {"currentPage", &p.Current}} {
		if s := q.Get(f.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				msg := f.name + " must be a positive integer, not " + strconv.Quote(s)
				if f.name == "pageSize" {
					msg += fmt.Sprintf(" (at most %d objects are served per page; a larger pageSize is served as %d)", store.MaxPageSize, store.MaxPageSize)
				}
				writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", msg)
				return p, false
			}
			*f.dst = n
		}
	}
	p.Size = min(p.Size, store.MaxPageSize)
	if maxPage := MaxPageOffset/p.Size + 1; p.Current > maxPage {
		writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", fmt.Sprintf(
			"currentPage %d is too large: with pageSize %d it must be at most %d (a page may skip at most %d objects)",
			p.Current, p.Size, maxPage, MaxPageOffset))
		return p, false
	}
	p.WithTotal = q.Get("withTotalPages") == "true"
	return p, true
}

// collection writes a Cumulocity collection answer.
func collection(w http.ResponseWriter, r *http.Request, name string, items []map[string]any, p store.Page, total int64) {
	if items == nil {
		items = []map[string]any{}
	}
	stats := map[string]any{"pageSize": p.Size, "currentPage": p.Current}
	if total >= 0 {
		stats["totalPages"] = store.TotalPages(total, p.Size)
		stats["totalElements"] = total
	}
	body := map[string]any{name: items, "statistics": stats, "self": pageLink(r, p.Current, p.Size)}
	if len(items) >= p.Size && (total < 0 || int64(p.Current)*int64(p.Size) < total) {
		body["next"] = pageLink(r, p.Current+1, p.Size)
	}
	if p.Current > 1 {
		body["prev"] = pageLink(r, p.Current-1, p.Size)
	}
	writeJSON(w, http.StatusOK, body)
}

func pageLink(r *http.Request, page, size int) string {
	q := r.URL.Query()
	q.Set("currentPage", strconv.Itoa(page))
	q.Set("pageSize", strconv.Itoa(size))
	return self(r, r.URL.Path) + "?" + q.Encode()
}

// dateParam parses an ISO 8601 date parameter; ok is false after an
// answered error.
func dateParam(w http.ResponseWriter, r *http.Request, area, name string) (time.Time, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, true
	}
	if t, err := parseTime(s); err == nil {
		return t, true
	}
	writeError(w, r, http.StatusUnprocessableEntity, area+"/unprocessable", name+" "+strconv.Quote(s)+" is not an ISO 8601 date")
	return time.Time{}, false
}

// parseTime reads the ISO 8601 forms Cumulocity's clients send.
func parseTime(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func jsonTime(t time.Time) string { return render.Time(t) }

func escape(s string) string { return render.Escape(s) }

// answerList writes one page of objects as a Cumulocity collection, or the
// store's error.
func answerList[T any](a *API, w http.ResponseWriter, r *http.Request, area, name string, p store.Page, objs []T, total int64, err error, toJSON func(*http.Request, T) map[string]any) {
	if err != nil {
		a.storeError(w, r, area, err)
		return
	}
	items := make([]map[string]any, len(objs))
	for i, o := range objs {
		items[i] = toJSON(r, o)
	}
	collection(w, r, name, items, p, total)
}

// answerOne writes one object, or the store's error.
func answerOne[T any](a *API, w http.ResponseWriter, r *http.Request, area string, obj T, err error, toJSON func(*http.Request, T) map[string]any) {
	if err != nil {
		a.storeError(w, r, area, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(r, obj))
}
