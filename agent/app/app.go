// Package app assembles the agent from its parts (store, LwM2M server,
// sessions, operation runner, REST API) and runs them under one context.
// The serve command and the end-to-end tests both start the agent here.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/bootstrap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/bulkops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/console"
	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/realtime"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/replica"
	"github.com/lwm2m-agent/lwm2m-agent/agent/retention"
	"github.com/lwm2m-agent/lwm2m-agent/agent/session"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	storecache "github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/engine"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/bundled"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Agent is a running agent.
type Agent struct {
	// Store is the store behind the agent's cache, whose changes Realtime
	// announces: what every part uses.
	Store store.Engine
	// StoreEngine names the engine: engine.Embedded or engine.MongoDB.
	StoreEngine string
	Server      *lwm2m.Server
	// Bootstrap is the bootstrap server, nil when it is off.
	Bootstrap *bootstrap.Server
	Ops       *ops.Runner
	// PostOps queues the tenants' post-registration operations.
	PostOps *ops.PostOps
	// Bulk creates the operations of bulk operations.
	Bulk *bulkops.Scheduler
	// Retention expires the history by the configured maximum ages.
	Retention *retention.Runner
	// Replica shares the work with the other agents on a MongoDB store;
	// nil with the embedded store.
	Replica *replica.Replica
	Values  *session.ValueWriter
	State   *session.StateWriter
	// Pipeline maps reported values into measurements, events, alarms
	// and inventory.
	Pipeline *mapping.Pipeline
	Models   *model.Registry
	// Protocols are the tenants' device protocols; the API changes them,
	// and they are a mapping.Source.
	Protocols *store.Protocols[mapping.Functionality]
	// Plugins are the configured plugins and decoders, nil without any;
	// Decoder hands them the values of decoder:<name> resources.
	// Plugins also runs the bundled mapping and custom action plugins
	// when they run as processes (--bundled-plugins process).
	Plugins *plugins.Host
	Decoder *mapping.PluginDecoder
	Mappers *mapping.PluginMappers // nil without mapping plugins
	// Refused counts and logs input refused by a limit, for every part.
	Refused *refusal.Log
	// Realtime serves the realtime notifications of every change made
	// through Store (and the API's pool).
	Realtime *realtime.Hub
	// Firmware serves the firmware packages devices pull (/fw/<token>
	// on the LwM2M ports and the HTTP port) and opens them for PUSH.
	Firmware *firmware.Service

	// CoAPAddr and HTTPAddr are where the agent listens (ports resolved).
	CoAPAddr  net.Addr
	CoAPSAddr net.Addr // nil when the DTLS port is off
	// BootstrapAddr and BootstrapSAddr are the bootstrap server's ports,
	// nil when off.
	BootstrapAddr  net.Addr
	BootstrapSAddr net.Addr
	HTTPAddr       net.Addr
	HTTPSAddr      net.Addr // nil when the HTTPS port is off
	// AdminPassword is the generated password of management/admin when the
	// store was empty and none was configured; empty otherwise.
	AdminPassword string

	log     *slog.Logger
	httpSrv *http.Server
	httpLn  net.Listener
	// httpsSrv serves the same handler over TLS; nil when off.
	httpsSrv *http.Server
	httpsLn  net.Listener
	// apiStore is the store over the API's own connections (MongoDB),
	// nil when the API shares the store's.
	apiStore store.Engine
	ready    *readiness
	// restoreEnded counts the registrations the start ended instead of
	// restoring them, among those the agent ended.
	restoreEnded uint64
}

// apiPoolSize bounds the API's own connections to MongoDB.
const apiPoolSize = 4

// Start opens the store, binds every socket and starts serving; it returns
// once the agent accepts requests. The agent runs until ctx ends; Wait
// returns after everything has stopped.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (*Agent, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	refused := refusal.New(log, 0)
	raw, kind, err := engine.Open(ctx, engine.Config{MongoURI: cfg.MongoURI, DataDir: cfg.DataDir, SyncNormal: cfg.StoreSync == config.StoreSyncNormal, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	if kind == engine.Embedded {
		log.Info("store open", "engine", kind, "sync", cfg.StoreSync)
	} else {
		log.Info("store open", "engine", kind)
	}
	// One cache for every part, the API's pool included, so that a change
	// made through one is seen by the others at once.
	caches := storecache.New(storeCacheConfig(cfg))
	cached := caches.Wrap(raw)
	// Every write goes through the realtime hub's wrapper, which
	// announces it; the hub reads what a write did not answer beneath it.
	hub := realtime.New(realtime.Config{Store: cached, Refused: refused, Logger: log, Limits: realtime.Limits{
		Clients: cfg.RealtimeMaxClients, ClientsPerUser: cfg.RealtimeMaxClientsPerUser, Subscriptions: cfg.RealtimeMaxSubscriptions,
		Queue: cfg.RealtimeQueueSize, ConnectTimeout: cfg.RealtimeConnectTimeout, MaxInterval: cfg.RealtimeMaxInterval,
	}})
	st := hub.Wrap(cached)
	a := &Agent{Store: st, StoreEngine: kind, Models: model.Core(), log: log, Refused: refused, Realtime: hub,
		ready: &readiness{store: raw, log: log.With("component", "health"), ctx: ctx}}
	fail := func(err error) (*Agent, func() error, error) {
		if a.Plugins != nil {
			a.Plugins.Close()
		}
		if a.apiStore != nil {
			_ = a.apiStore.Close(context.WithoutCancel(ctx))
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
		return nil, nil, err
	}
	mgmt, err := st.EnsureManagement(ctx, cfg.AdminPassword)
	if err != nil {
		return fail(fmt.Errorf("create management tenant: %w", err))
	}
	a.AdminPassword = mgmt.Generated
	if mgmt.PasswordChanged {
		// Every replica sharing the store must be given the same password,
		// or each start undoes the others'.
		log.Warn("password of management/admin changed to the configured one (LWM2M_AGENT_ADMIN_PASSWORD, --admin-password); the previous one no longer works")
	}

	a.Protocols = store.NewProtocols[mapping.Functionality](st)
	// Last known values are coalesced per device over a second: a device
	// notifying often costs one store update a second, not one a value.
	a.Values = session.NewValueWriter(st, 4096, time.Second, log)
	a.State = session.NewStateWriter(st, 8192, 10*time.Millisecond, log)
	pcfg, err := plugins.LoadConfig(cfg.PluginsConfig)
	if err != nil {
		return fail(err) // "plugins config FILE: ..." says what it is
	}
	bundledOpts := mapping.BundledOptions{}
	if cfg.BundledPlugins == config.BundledProcess {
		exe := cfg.BundledPluginsExecutable
		if exe == "" {
			if exe, err = os.Executable(); err != nil {
				return fail(fmt.Errorf("bundled plugins: the agent's executable: %w", err))
			}
			if strings.HasSuffix(exe, ".test") {
				// re-executed, a test binary would run its tests again
				return fail(fmt.Errorf("bundled plugins: %s is a Go test binary, not the agent: name a built agent (BundledPluginsExecutable) or run them in process", exe))
			}
		}
		var specs []plugins.Spec
		for _, name := range bundled.Names {
			specs = append(specs, plugins.Spec{Name: name, Kind: bundled.Kind(name), Path: exe, Args: []string{"plugin", name}, Bundled: true})
		}
		pcfg.Plugins = append(specs, pcfg.Plugins...)
	}
	if len(pcfg.Plugins) > 0 {
		// the plugins live as long as the agent, not the start-up call
		if a.Plugins, err = plugins.New(context.WithoutCancel(ctx), pcfg, log); err != nil {
			return fail(fmt.Errorf("plugins: %w", err))
		}
	}
	if cfg.BundledPlugins == config.BundledProcess {
		bundledOpts.Client = bundledHost{a.Plugins}
	}
	a.Pipeline = mapping.New(mapping.Config{Store: st, Source: a.Protocols, Values: a.Values, Bundled: bundledOpts, Logger: log})
	if cfg.PluginsConfig != "" && a.Plugins != nil {
		a.Decoder = mapping.NewPluginDecoder(a.Plugins, a.Pipeline, mapping.DecoderOptions{Logger: log, Backlog: st,
			MaxWaiting: cfg.DecodeBacklogSize, RetryFor: cfg.DecodeRetryFor, MaxBackoff: cfg.DecodeMaxBackoff})
		a.Pipeline.SetDecoder(a.Decoder)
		if a.Mappers = mapping.NewPluginMappers(a.Plugins, a.Pipeline, mapping.DecoderOptions{Logger: log}); a.Mappers != nil {
			a.Pipeline.SetPluginMappers(a.Mappers)
		}
	}
	// With MongoDB, other agents may share the store as replicas.
	shared, replicaID := kind != engine.Embedded, ""
	if shared {
		if replicaID = cfg.ReplicaID; replicaID == "" {
			replicaID = replica.DefaultID()
		}
		log.Info("replica", "replica", replicaID)
	}
	hooks := session.New(session.Config{Store: st, Values: a.Values, State: a.State, Pipeline: a.Pipeline, AutoRegister: cfg.AutoRegister, Logger: log,
		EventInterval: cfg.RegistrationEventInterval, Refused: refused, Replica: replicaID, Shared: shared})
	a.Firmware, err = firmware.New(firmware.Config{Store: st, Logger: log,
		MaxSize: int64(cfg.FirmwareMaxSize), MaxTransfers: cfg.FirmwareMaxTransfers, StallTimeout: cfg.FirmwareStallTimeout,
		FetchTimeout: cfg.FirmwareFetchTimeout, CopyTTL: cfg.FirmwareTimeout,
		CoAPBase: cfg.FirmwareCoAPBase, CoAPSBase: cfg.FirmwareCoAPSBase, HTTPBase: cfg.FirmwareHTTPBase, HTTPSBase: cfg.FirmwareHTTPSBase})
	if err != nil {
		return fail(err)
	}
	sessions, err := dtlsSessions(cfg, st, log)
	if err != nil {
		return fail(err)
	}
	srv, err := lwm2m.NewServer(lwm2m.Config{
		Addr:             cfg.CoAPAddr,
		RequestTimeout:   cfg.RequestTimeout,
		IdleTimeout:      cfg.IdleTimeout,
		NStart:           cfg.NStart,
		MaxRegistrations: cfg.MaxRegistrations,
		Replica:          replicaID,
		TakeOver:         shared,
		PeerRate:         float64(cfg.PeerRate),
		PeerBurst:        cfg.PeerBurst,
		RegisterInterval: offIfZero(cfg.EndpointRegisterInterval),
		RegisterBurst:    cfg.EndpointRegisterBurst,
		Types:            a.Protocols.GlobalTypes(),
		Logger:           log,

		SecureAddr: cfg.CoAPSAddr,
		Keys:       session.Keys(st, store.PSKServer),
		DTLS: psk.Limits{
			HandshakeTimeout:     cfg.DTLSHandshakeTimeout,
			MaxHandshakes:        cfg.DTLSMaxHandshakes,
			MaxHandshakesPerAddr: cfg.DTLSMaxHandshakesPerAddr,
			MaxSessions:          cfg.MaxRegistrations,
		},
		SessionIdleTimeout: cfg.DTLSSessionIdleTimeout,
		Sessions:           sessions,
		MaxPendingPeers:    cfg.MaxPendingPeers,
		PendingIdleTimeout: cfg.PendingIdleTimeout,
		Blockwise:          blockwiseLimits(cfg),
		Refused:            refused,
		Packages:           a.Firmware,
	}, &notifyingHooks{Hooks: hooks, ops: &a.Ops})
	if err != nil {
		return fail(fmt.Errorf("lwm2m server: %w", err))
	}
	a.Server = srv
	hooks.SetServer(srv)
	a.Pipeline.SetObserver(srv)
	// The registrations of before this start are live again, so that
	// devices need not register anew; before serving, so that no Update
	// comes first.
	restored, err := session.Restore(ctx, hooks, srv)
	a.restoreEnded = uint64(restored.Ended)
	switch {
	case errors.Is(err, lwm2m.ErrFull):
		log.Warn("not every registration restored: max-registrations reached", "restored", restored.Restored)
	case err != nil:
		return fail(err)
	}
	log.Info("registrations restored", "restored", restored.Restored, "skipped", restored.Skipped, "ended", restored.Ended,
		"other_replicas", restored.Elsewhere, "took", restored.Took.Round(time.Millisecond))
	if cfg.BootstrapAddr != "" {
		bcfg := bootstrap.Config{
			Addr:               cfg.BootstrapAddr,
			BootstrapURI:       cfg.BootstrapURI,
			SecureBootstrapURI: cfg.BootstrapSURI,
			RequestTimeout:     cfg.RequestTimeout,
			IdleTimeout:        cfg.IdleTimeout,
			RequestInterval:    offIfZero(cfg.BootstrapRequestInterval),
			RequestBurst:       cfg.BootstrapRequestBurst,
			EventInterval:      offIfZero(cfg.BootstrapEventInterval),
			Logger:             log,
			MaxPendingPeers:    cfg.MaxPendingPeers,
			PendingIdleTimeout: cfg.PendingIdleTimeout,
			Blockwise:          blockwiseLimits(cfg),
			Refused:            refused,
		}
		if cfg.BootstrapSAddr != "" {
			bcfg.SecureAddr = cfg.BootstrapSAddr
			bcfg.Keys = session.Keys(st, store.PSKBootstrap)
			bcfg.DTLS = psk.Limits{HandshakeTimeout: cfg.DTLSHandshakeTimeout, MaxHandshakes: cfg.DTLSMaxHandshakes, MaxHandshakesPerAddr: cfg.DTLSMaxHandshakesPerAddr}
		}
		a.Bootstrap, err = bootstrap.NewServer(bcfg, bootstrap.NewStoreHooks(st, log))
		if err != nil {
			return fail(fmt.Errorf("bootstrap server: %w", err))
		}
	}
	a.Ops = ops.New(ops.Config{Server: srv, Store: st, Models: a.Protocols, Values: a.Values, Pipeline: a.Pipeline, Workers: cfg.OperationWorkers, Logger: log,
		AwakeTime: cfg.AwakeTime, MaxPerWakeup: cfg.MaxOperationsPerWakeup, RequestTimeout: cfg.RequestTimeout,
		MaxRequestTimeout: cfg.MaxRequestTimeout, Attempts: cfg.OperationAttempts, ExecutingTimeout: cfg.ExecutingTimeout,
		FirmwareTimeout: cfg.FirmwareTimeout, Firmware: a.Firmware, FirmwareDefaults: ops.FirmwareDefaults{
			Delivery: cfg.FirmwareDeliveryMethod, Protocols: strings.Split(cfg.FirmwareDeviceProtocols, ","), Reset: cfg.FirmwareResetMechanism},
		Replica: replicaID, Shared: shared})
	if shared {
		// the replica's watch reads beneath the realtime hub: it writes nothing
		a.Replica = replica.New(replica.Config{ID: replicaID, Store: cached, Kick: a.Ops, Poll: cfg.ReplicaPoll, Logger: log})
		a.Ops.SetReplica(a.Replica)
	}
	hooks.SetOps(a.Ops)
	// a functionality stored with autoObserve reaches the devices already
	// registered, not only those that register after it
	a.Protocols.OnChange(a.Ops.ProtocolsChanged)
	a.PostOps = ops.NewPostOps(ops.PostOpsConfig{Store: st, Logger: log})
	hooks.SetPostOps(a.PostOps)
	a.Bulk = bulkops.New(bulkops.Config{Store: st, Runner: a.Ops, Logger: log})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Retention = retention.New(retention.Config{Store: st, Interval: cfg.RetentionInterval, First: min(cfg.RetentionInterval, 10*time.Minute), Logger: log,
		Rules: []retention.Rule{
			{Kind: store.DataMeasurement, MaxAge: days(cfg.RetentionMeasurementDays)},
			{Kind: store.DataEvent, MaxAge: days(cfg.RetentionEventDays)},
			{Kind: store.DataAlarm, MaxAge: days(cfg.RetentionAlarmDays)},
			{Kind: store.DataOperation, MaxAge: days(cfg.RetentionOperationDays)},
		}})
	reg.MustRegister(newCollector(a), a.Pipeline.Collector(), a.Refused.Collector(), caches.Collector(), a.Retention.Collector(), hub.Collector())
	reg.MustRegister(a.Firmware.Collectors()...)
	if a.Replica != nil {
		reg.MustRegister(a.Replica.Collector())
	}
	if a.Plugins != nil {
		reg.MustRegister(a.Plugins.Collector())
	}
	if a.Decoder != nil {
		reg.MustRegister(a.Decoder.Collector())
	}
	// The API gets connections of its own where the engine's are shared
	// (MongoDB): a user's request must not wait behind the notifications.
	apiStore := st
	if p, ok := raw.(store.Pooled); ok {
		pool, err := p.Pool(apiPoolSize)
		if err != nil {
			return fail(fmt.Errorf("api store pool: %w", err))
		}
		a.apiStore, apiStore = pool, hub.Wrap(caches.Wrap(pool))
	}
	a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fail(fmt.Errorf("http api: listen %s: %w", cfg.HTTPAddr, err))
	}
	a.HTTPAddr = a.httpLn.Addr()
	if cfg.HTTPSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fail(fmt.Errorf("https: tls-cert-file %s, tls-key-file %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err))
		}
		ln, err := net.Listen("tcp", cfg.HTTPSAddr)
		if err != nil {
			return fail(fmt.Errorf("https: listen %s: %w", cfg.HTTPSAddr, err))
		}
		a.HTTPSAddr = ln.Addr()
		a.httpsLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	external := cfg.ExternalURL
	if external == "" {
		external = "http://" + reachable(a.HTTPAddr)
	}
	var pluginNames mapping.PluginNames // nil: no plugins, not a nil *plugins.Host
	if a.Plugins != nil {
		pluginNames = a.Plugins
	}
	web, err := console.New()
	if err != nil {
		return fail(err)
	}
	h := api.New(api.Config{Store: apiStore, Console: web, Models: a.Protocols, Ops: a.Ops, Bulk: a.Bulk, Protocols: a.Protocols, Plugins: pluginNames, Metrics: reg, Logger: log, Security: hooks,
		PluginStatus:      pluginStatus{a.Plugins, a.Decoder},
		Readiness:         a.Ready,
		MaxRequestTimeout: cfg.MaxRequestTimeout, CredentialsHashCost: cfg.CredentialsHashCost, MaxBinarySize: int64(cfg.MaxBinarySize),
		FirmwareMaxSize: int64(cfg.FirmwareMaxSize),
		ExternalURL:     external, LoginThrottle: api.LoginThrottle{Failures: cfg.LoginFailures, MaxBackoff: cfg.LoginMaxBackoff},
		Refused: a.Refused, Limits: api.Limits{
			DocumentSize: cfg.MaxDocumentSize, JSONDepth: cfg.MaxJSONDepth, JSONMembers: cfg.MaxJSONMembers,
			JSONArray: cfg.MaxJSONArray, JSONValues: cfg.MaxJSONValues, FragmentSize: cfg.MaxFragmentSize,
			DDFSize: cfg.MaxDDFSize, DDFObjects: cfg.MaxDDFObjects, DDFResources: cfg.MaxDDFResources,
			CSVLineSize: cfg.MaxCSVLineSize, CSVFields: cfg.MaxCSVFields, StoreTimeout: cfg.StoreRequestTimeout,
		}})
	// The realtime notifications share the API's port, users and login
	// throttle.
	mux := http.NewServeMux()
	rt := hub.Handler(h.Login, external)
	mux.Handle(realtime.Path, rt)
	mux.Handle(realtime.Path+"/", rt)
	mux.Handle(firmware.HTTPPath, a.Firmware.Handler()) // no credentials: the token is one
	mux.Handle("/", h.Handler())
	a.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if a.httpsLn != nil {
		a.httpsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)} // failed handshakes of scanners are no news
	}

	// One part failing stops the whole agent: an agent without its LwM2M
	// server or its API must not look alive.
	ctx, stopAll := context.WithCancel(ctx)
	a.ready.ctx = ctx // a part that fails stops the agent, which is then no longer ready
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var runErrs []error
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				errMu.Lock()
				runErrs = append(runErrs, fmt.Errorf("%s: %w", name, err))
				errMu.Unlock()
				log.Error("agent part failed; stopping", "part", name, "err", err)
				stopAll()
			}
		}()
	}
	run("lwm2m server", func() error { return srv.Serve(ctx) })
	if a.Bootstrap != nil {
		run("bootstrap server", func() error { return a.Bootstrap.Serve(ctx) })
	}
	run("operations", func() error { a.Ops.Run(ctx); return nil })
	if a.Replica != nil {
		run("replica", func() error { a.Replica.Run(ctx); return nil })
	}
	run("post-registration operations", func() error { a.PostOps.Run(ctx); return nil })
	run("bulk operations", func() error { a.Bulk.Run(ctx); return nil })
	run("automatic observations", func() error { a.Pipeline.RunObservers(ctx); return nil })
	if a.Decoder != nil {
		run("decoders", func() error { a.Decoder.Run(ctx); return nil })
	}
	if a.Mappers != nil {
		run("mapping plugins", func() error { a.Mappers.Run(ctx); return nil })
	}
	run("retention", func() error { a.Retention.Run(ctx); return nil })
	run("firmware", func() error { a.Firmware.Run(ctx); return nil })
	run("realtime notifications", func() error { hub.Run(ctx); return nil })
	// The writers outlive the server: they stop after the last hook call
	// has handed over its changes, then drain them into the store.
	writersCtx, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	go a.Values.Run(writersCtx)
	go a.State.Run(writersCtx)
	go a.Pipeline.RunWriter(writersCtx)
	run("http api", func() error { return a.httpSrv.Serve(a.httpLn) })
	if a.httpsSrv != nil {
		run("https api", func() error { return a.httpsSrv.Serve(a.httpsLn) })
	}
	if cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ps := &http.Server{Addr: cfg.PprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		run("pprof", ps.ListenAndServe)
		run("pprof shutdown", func() error { <-ctx.Done(); return ps.Close() })
		log.Info("listening", "service", "pprof", "addr", cfg.PprofAddr)
	}
	run("http shutdown", func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A client that keeps a request running past the grace must not
		// make a stop look like a failure: its connection is cut instead.
		var errs []error
		for _, hs := range []*http.Server{a.httpSrv, a.httpsSrv} {
			if hs == nil {
				continue
			}
			err := hs.Shutdown(sctx)
			if errors.Is(err, context.DeadlineExceeded) {
				log.Warn("http api: requests still running after 5 s at stop; connections closed")
				err = hs.Close()
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	a.CoAPAddr = srv.Addr()
	log.Info("listening", "service", "lwm2m coap", "addr", a.CoAPAddr.String())
	coapsBase := ""
	if a.CoAPSAddr = srv.SecureAddr(); a.CoAPSAddr != nil {
		log.Info("listening", "service", "lwm2m coaps (dtls-psk)", "addr", a.CoAPSAddr.String())
		coapsBase = "coaps://" + reachable(a.CoAPSAddr)
	}
	httpsBase := httpBase(external, "https")
	if a.HTTPSAddr != nil {
		log.Info("listening", "service", "https api", "addr", a.HTTPSAddr.String())
		if httpsBase == "" {
			httpsBase = "https://" + reachable(a.HTTPSAddr)
		}
	}
	a.Firmware.SetBases("coap://"+reachable(a.CoAPAddr), coapsBase, httpBase(external, "http"), httpsBase)
	if a.Bootstrap != nil {
		a.BootstrapAddr, a.BootstrapSAddr = a.Bootstrap.Addr(), a.Bootstrap.SecureAddr()
		log.Info("listening", "service", "bootstrap coap", "addr", a.BootstrapAddr.String())
		if a.BootstrapSAddr != nil {
			log.Info("listening", "service", "bootstrap coaps (dtls-psk)", "addr", a.BootstrapSAddr.String())
		}
	}
	log.Info("listening", "service", "http api", "addr", a.HTTPAddr.String())
	// Every socket was bound above, before its part started serving it.
	a.ready.started.Store(true)

	wait := func() error {
		wg.Wait()
		stopAll()
		hooks.Wait()
		// the pipeline maps what is queued with the bundled plugins
		// before their processes stop
		stopWriters()
		<-a.Values.Done()
		<-a.State.Done()
		<-a.Pipeline.Done()
		if a.Plugins != nil {
			a.Plugins.Close()
		}
		errMu.Lock()
		all := runErrs
		errMu.Unlock()
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if a.apiStore != nil {
			if err := a.apiStore.Close(cctx); err != nil {
				all = append(all, fmt.Errorf("close api store pool: %w", err))
			}
		}
		if err := st.Close(cctx); err != nil {
			all = append(all, fmt.Errorf("close store: %w", err))
		}
		return errors.Join(all...)
	}
	return a, wait, nil
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// bundledHost reaches the bundled plugins' processes through the host.
// pluginStatus answers the API's plugin status from the host and the
// decoder, either of which may be nil.
type pluginStatus struct {
	h *plugins.Host
	d *mapping.PluginDecoder
}

func (p pluginStatus) PluginStats() []plugins.Stats {
	if p.h == nil {
		return nil
	}
	return p.h.Stats()
}

func (p pluginStatus) DecodeBacklog() ([]store.DecodeBacklogStat, map[string]int64) {
	if p.d == nil {
		return nil, nil
	}
	return p.d.BacklogStats(), p.d.Dropped()
}

type bundledHost struct{ h *plugins.Host }

func (b bundledHost) Map(ctx context.Context, req *pb.MapRequest) (*pb.MapResponse, error) {
	return b.h.MapBundled(ctx, bundled.Mapping, req)
}

func (b bundledHost) Run(ctx context.Context, req *pb.ActionRequest) (*pb.MapResponse, error) {
	return b.h.RunBundled(ctx, bundled.CustomActions, req)
}

// notifyingHooks are the session's hooks that also tell the operation
// runner of notifications, so that a firmware update under way hears of
// its device's state changes. ops is set before the LwM2M server serves.
type notifyingHooks struct {
	*session.Hooks
	ops **ops.Runner
}

func (h *notifyingHooks) Values(ctx context.Context, reg lwm2m.Registration, observed node.Path, recs []node.Record) {
	h.Hooks.Values(ctx, reg, observed, recs)
	if r := *h.ops; r != nil && observed != node.Root {
		r.Notified(reg.Tenant, reg.DeviceID, observed)
	}
}

// reachable is HOST:PORT of a listen address, with 127.0.0.1 for a
// wildcard host, which no client can connect to.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// httpBase is the external URL when it is of scheme, the firmware
// packages' default base; "" otherwise.
func httpBase(external, scheme string) string {
	if strings.HasPrefix(external, scheme+"://") {
		return external
	}
	return ""
}

// blockwiseLimits are the block-wise bounds of both servers.
func blockwiseLimits(cfg config.Config) coapfront.TransferLimits {
	return coapfront.TransferLimits{
		MaxBody: int64(cfg.BlockwiseMaxBody),
		PerPeer: cfg.BlockwiseMaxTransfersPerPeer,
		Total:   cfg.BlockwiseMaxTransfers,
	}
}

// offIfZero turns a setting's 0, which turns a limit off, into the
// servers' negative value for it: their 0 is their default.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
