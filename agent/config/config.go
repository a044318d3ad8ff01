// Package config holds the agent's settings: defaults, environment
// variables (LWM2M_AGENT_*) and command-line flags of the same names in
// kebab case, with validation that names the setting at fault.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Config is everything `lwm2m-agent serve` needs.
type Config struct {
	CoAPAddr       string
	CoAPSAddr      string
	BootstrapAddr  string
	BootstrapSAddr string
	// BootstrapURI and BootstrapSURI are the bootstrap server's public
	// URIs, written into the bootstrap account of devices whose
	// generateBootstrapServerConfig is true; empty derives them from the
	// listen addresses (loopback when those name no host).
	BootstrapURI  string
	BootstrapSURI string
	HTTPAddr      string
	// HTTPSAddr, when set, serves the same API, console and firmware
	// downloads over TLS with the certificate and key of TLSCertFile and
	// TLSKeyFile (PEM): devices that pull firmware over HTTPS need it
	// unless a TLS proxy stands in front of HTTPAddr.
	HTTPSAddr   string
	TLSCertFile string
	TLSKeyFile  string
	// ExternalURL is the base of the links in API answers (self, next,
	// prev) as clients reach the API; empty takes http://HOST:PORT of
	// HTTPAddr.
	ExternalURL string
	MongoURI    string
	DataDir     string
	// StoreSync is the embedded engine's durability: StoreSyncFull
	// (every commit is on disk before its callers are answered) or
	// StoreSyncNormal (every commit survives the agent's crash, the last
	// ones may be lost with the machine's power).
	StoreSync     string
	AutoRegister  bool
	AdminPassword string
	// Dev is the development setup of `make run`: see ApplyDev.
	Dev       bool
	LogLevel  string
	LogFormat string
	// StoreCacheSize bounds the store cache (agent/store/cache) to this
	// many devices per lookup it keeps; 0 turns it off. StoreCacheTTL is
	// how long its answers are kept with MongoDB, where other agents may
	// write; the embedded store's never expire (the agent is its only
	// writer).
	StoreCacheSize int
	StoreCacheTTL  time.Duration
	// ReplicaID names this agent among the replicas sharing a MongoDB
	// store (empty: the host name, else a random name at start);
	// ReplicaPoll is how often a replica reads the new PENDING operations
	// where the deployment has no change streams.
	ReplicaID   string
	ReplicaPoll time.Duration
	// Retention*Days are the maximum ages of the history, in days, as
	// Cumulocity's retention rules give them (0 keeps a kind forever):
	// measurements and events by their time, alarms once cleared,
	// operations once finished. RetentionInterval is the time between
	// passes.
	RetentionMeasurementDays int
	RetentionEventDays       int
	RetentionAlarmDays       int
	RetentionOperationDays   int
	RetentionInterval        time.Duration
	// PprofAddr serves Go's profiler when set (loopback only, for diagnosis).
	PprofAddr string
	// ShutdownDelay is how long the agent goes on serving, not ready,
	// after SIGTERM, so that load balancers stop sending it traffic
	// before it stops.
	ShutdownDelay time.Duration

	// RequestTimeout bounds one request to a device.
	RequestTimeout time.Duration
	// IdleTimeout drops the CoAP exchange state of a device that has been
	// silent this long; its registration stays.
	IdleTimeout time.Duration
	// NStart is how many requests may be in flight to one device.
	NStart int
	// MaxRegistrations bounds how many devices one agent holds.
	MaxRegistrations int
	// OperationWorkers bounds how many devices receive operations at once.
	OperationWorkers int
	// AwakeTime is how long a device listens after each Register or
	// Update when neither its awakeTimeRegistrationParameter nor its
	// registration (at=) says; 0 means always online.
	AwakeTime time.Duration
	// MaxOperationsPerWakeup bounds the operations sent to a device with
	// an awake time after one Register or Update.
	MaxOperationsPerWakeup int
	// OperationAttempts is how many requests of one operation may time
	// out before it is FAILED.
	OperationAttempts int
	// ExecutingTimeout fails an operation EXECUTING this long (its
	// outcome was lost); above MaxRequestTimeout.
	ExecutingTimeout time.Duration
	// FirmwareTimeout bounds a firmware update (fwupdate, c8y_Firmware)
	// from its start to the device's final Update Result, across awake
	// windows and restarts; the EXECUTING watchdog leaves it to this.
	FirmwareTimeout time.Duration
	// Firmware* configure the serving of firmware packages to devices
	// that pull them (agent/firmware, docs/firmware.md): the largest
	// package, the transfers served at once, the time after which a
	// transfer whose device asks nothing loses its slot, the time an
	// external package may take to fetch, and the bases of the URIs given
	// to devices per scheme (empty: from the listen addresses and
	// ExternalURL).
	FirmwareMaxSize      int
	FirmwareMaxTransfers int
	FirmwareStallTimeout time.Duration
	FirmwareFetchTimeout time.Duration
	FirmwareCoAPBase     string
	FirmwareCoAPSBase    string
	FirmwareHTTPBase     string
	FirmwareHTTPSBase    string
	// FirmwareDeliveryMethod (PULL, PUSH, BOTH), FirmwareDeviceProtocols
	// (a comma-separated list of COAP, COAPS, HTTP, HTTPS) and
	// FirmwareResetMechanism (PACKAGE, PACKAGE_URI, or empty: by the
	// method) are what a firmware update assumes of a device whose
	// registration parameters and firmware object say nothing.
	FirmwareDeliveryMethod  string
	FirmwareDeviceProtocols string
	FirmwareResetMechanism  string
	// PeerRate and PeerBurst bound the datagrams one peer address may send
	// per second and at once; a negative rate turns the limit off.
	PeerRate  int
	PeerBurst int
	// EndpointRegisterInterval and EndpointRegisterBurst bound the
	// Registers naming one endpoint (over plain CoAP, or over DTLS with
	// one identity) from any addresses: a burst, then one per interval;
	// 0 turns the limit off.
	EndpointRegisterInterval time.Duration
	EndpointRegisterBurst    int
	// RegistrationEventInterval coalesces a device's repeated
	// registration and security events: one stored per interval, the next
	// one counting those held back; 0 stores every one.
	RegistrationEventInterval time.Duration
	// BootstrapRequestInterval and BootstrapRequestBurst bound the
	// Bootstrap-Requests for one endpoint (over plain CoAP, or over DTLS
	// with one identity) from any addresses: a burst, then one per
	// interval; 0 turns the limit off.
	BootstrapRequestInterval time.Duration
	BootstrapRequestBurst    int
	// BootstrapEventInterval coalesces the bootstrap start and failure
	// events of sessions whose device never answered: one of each stored
	// per device and interval, the next one counting those held back; 0
	// stores every one.
	BootstrapEventInterval time.Duration
	// MaxPendingPeers bounds, per plain CoAP port, the peers with state
	// that hold no registration or bootstrap session; PendingIdleTimeout
	// drops the state of such a peer silent this long.
	MaxPendingPeers    int
	PendingIdleTimeout time.Duration
	// BlockwiseMaxBody bounds a block-wise body a device sends, in bytes;
	// BlockwiseMaxTransfersPerPeer and BlockwiseMaxTransfers bound the
	// unfinished transfers of one peer and of each server.
	BlockwiseMaxBody             int
	BlockwiseMaxTransfersPerPeer int
	BlockwiseMaxTransfers        int

	// DTLSHandshakeTimeout ends an unfinished DTLS handshake.
	DTLSHandshakeTimeout time.Duration
	// DTLSMaxHandshakes bounds the DTLS handshakes under way; a ClientHello
	// without a valid cookie takes none (it is answered without state).
	DTLSMaxHandshakes int
	// DTLSMaxHandshakesPerAddr bounds the DTLS handshakes under way from
	// one IP address.
	DTLSMaxHandshakesPerAddr int
	// DTLSSessionIdleTimeout closes a DTLS session that carried nothing
	// this long; the device handshakes again on its next message.
	DTLSSessionIdleTimeout time.Duration
	// DTLSParkAfter parks a DTLS session idle this long (0: never): its
	// goroutines and buffers go, its state stays, and the next record
	// resumes it without a handshake.
	DTLSParkAfter time.Duration
	// DTLSParkedMax bounds the parked sessions held in memory; beyond it
	// the least recently parked are in the store only.
	DTLSParkedMax int
	// DTLSStateKey seals the DTLS session states in the store: 64 hex
	// digits (32 bytes), the same for every replica of one store. Empty:
	// a key generated once and kept in the data directory.
	DTLSStateKey string

	// MaxRequestTimeout caps the lwm2mRequestTimeout a device's
	// registration parameters may ask for (bulk file and bootstrap
	// resource alike).
	MaxRequestTimeout time.Duration
	// CredentialsHashCost is the bcrypt cost of the devices' CREDENTIALS
	// stored by bulk registration: each step doubles the time a line
	// takes to import, and the time a guess takes to whoever reads the
	// store. The default, bcrypt's least (about 1 ms a line here), lets
	// 100,000 lines import within two minutes on two cores; it slows the
	// guessing of a weak credential from a stolen copy of the store, and
	// only a credential with entropy of its own (random, 16 characters
	// or more) stays out of reach at any cost.
	CredentialsHashCost int

	// LoginFailures is how many wrong credentials in a row from one address
	// or for one user the API answers before it answers 429 for a backoff
	// (negative: never); LoginMaxBackoff caps that backoff.
	LoginFailures   int
	LoginMaxBackoff time.Duration

	// MaxBinarySize bounds one stored binary (POST /inventory/binaries),
	// in bytes.
	MaxBinarySize int

	// The realtime notifications' bounds (agent/realtime.Limits): clients
	// in all and per user, channels per client, messages waiting for one
	// client (beyond: it is dropped), how long a /meta/connect is held
	// and how long a client may go without one.
	RealtimeMaxClients        int
	RealtimeMaxClientsPerUser int
	RealtimeMaxSubscriptions  int
	RealtimeQueueSize         int
	RealtimeConnectTimeout    time.Duration
	RealtimeMaxInterval       time.Duration

	// The limits on what one API request may make the agent read and
	// store (README, Security and limits): a JSON body's size, nesting,
	// members per object, elements per array, members and elements in
	// all, and size of one top-level member; a DDF upload's size, objects
	// and resources per object; a registration file's record size and
	// fields per record.
	MaxDocumentSize int
	MaxJSONDepth    int
	MaxJSONMembers  int
	MaxJSONArray    int
	MaxJSONValues   int
	MaxFragmentSize int
	MaxDDFSize      int
	MaxDDFObjects   int
	MaxDDFResources int
	MaxCSVLineSize  int
	MaxCSVFields    int
	// StoreRequestTimeout bounds the store's time for one API request
	// (bulk registration and binaries excepted, which are bounded by
	// their size), so that a slow request cannot hold the connections
	// other tenants' requests need.
	StoreRequestTimeout time.Duration

	// PluginsConfig is the JSON file declaring the plugins and decoders
	// (agent/plugins.Config); empty runs none.
	PluginsConfig string
	// DecodeBacklogSize bounds the raw values waiting for decoders (and
	// custom action plugins) per tenant; DecodeRetryFor is how long a
	// value is retried while its plugin fails, DecodeMaxBackoff the
	// longest wait between tries (agent/mapping.PluginDecoder).
	DecodeBacklogSize int
	DecodeRetryFor    time.Duration
	DecodeMaxBackoff  time.Duration
	// BundledPlugins is how the bundled mapping and custom action plugins
	// run: BundledProcess (the agent's executable re-executed in plugin
	// mode, supervised like any plugin) or BundledInProcess (their code
	// called directly).
	BundledPlugins string
	// BundledPluginsExecutable is the executable re-executed for the
	// bundled plugins; empty is the running one (os.Executable). Tests,
	// whose binary is not the agent's, name a built agent.
	BundledPluginsExecutable string
}

// The values of BundledPlugins.
const (
	BundledProcess   = "process"
	BundledInProcess = "inprocess"
)

// Ceilings of the limits that meet a bound of their own: model.MaxDDFSize,
// what the DDF parser reads; MongoDB's 16 MiB document and 100 levels.
const (
	ddfSizeCeiling      = 8 << 20
	documentSizeCeiling = 8 << 20
	jsonDepthCeiling    = 90
)

// The values of StoreSync.
const (
	StoreSyncFull   = "full"
	StoreSyncNormal = "normal"
)

// Bounds of CredentialsHashCost: bcrypt's own (4 and 31); 31 would take
// hours per line.
const (
	MinCredentialsHashCost = 4
	MaxCredentialsHashCost = 31
)

// Default returns the settings of API.md.
func Default() Config {
	return Config{
		CoAPAddr:         ":5783",
		CoAPSAddr:        ":5784",
		BootstrapAddr:    ":5683",
		BootstrapSAddr:   ":5684",
		HTTPAddr:         ":8080",
		DataDir:          "./data",
		StoreSync:        StoreSyncFull,
		LogLevel:         "info",
		LogFormat:        "text",
		RequestTimeout:   30 * time.Second,
		IdleTimeout:      2 * time.Minute,
		NStart:           1,
		MaxRegistrations: 200000,
		OperationWorkers: 256,

		MaxOperationsPerWakeup: 10,
		OperationAttempts:      3,
		// Twice the largest request timeout: an operation still EXECUTING
		// then has no answer coming.
		ExecutingTimeout: 10 * time.Minute,
		FirmwareTimeout:  30 * time.Minute,
		// a thousand devices pulling at once; memory stays bounded by
		// the shared chunk cache, not by the transfers
		FirmwareMaxSize:      16 << 20,
		FirmwareMaxTransfers: 1024,
		FirmwareStallTimeout: 2 * time.Minute,
		FirmwareFetchTimeout: 5 * time.Minute,
		// what LwM2M 1.0 devices, which report no delivery method, do
		FirmwareDeliveryMethod:  "PULL",
		FirmwareDeviceProtocols: "COAP,COAPS,HTTP,HTTPS",
		PeerRate:                100,
		PeerBurst:               200,
		// Peers without a registration hold state for the length of a
		// Register (or Bootstrap-Request); 4,096 at about 10 KB each is
		// some 40 MB at most, and room for thousands of devices
		// registering at once.
		MaxPendingPeers:    4096,
		PendingIdleTimeout: 10 * time.Second,
		// A device's Register, Send or notification is kilobytes; 512
		// transfers of 256 KiB bound what they buffer to 128 MiB.
		BlockwiseMaxBody:             256 << 10,
		BlockwiseMaxTransfersPerPeer: 2,
		BlockwiseMaxTransfers:        512,
		BundledPlugins:               BundledProcess,

		// A device registers once a boot: five in a row (a reboot loop, a
		// lost answer) and one every 10 s beyond are more than any needs.
		EndpointRegisterInterval:  10 * time.Second,
		EndpointRegisterBurst:     5,
		RegistrationEventInterval: time.Minute,
		// A device retries a failed bootstrap after a minute, doubling
		// (LwM2M 1.1 Communication Retry Timer): three in a row and one
		// every 30 s beyond are more than it needs, and each costs a
		// session that sends requests to an address nobody verified.
		BootstrapRequestInterval: 30 * time.Second,
		BootstrapRequestBurst:    3,
		BootstrapEventInterval:   time.Minute,

		DTLSHandshakeTimeout: 10 * time.Second,
		DTLSMaxHandshakes:    1024,
		// a quarter of the slots: devices behind one carrier NAT share
		// an address
		DTLSMaxHandshakesPerAddr: 256,
		DTLSSessionIdleTimeout:   24 * time.Hour,
		DTLSParkAfter:            30 * time.Second,
		DTLSParkedMax:            200000,

		// Five minutes is far above any round trip a sleepy device on
		// NB-IoT needs, yet short enough that a forgotten request does not
		// hold an operation for hours.
		MaxRequestTimeout: 5 * time.Minute,
		// bcrypt cost 6 hashes a line in about 4 ms on one core, so that a
		// file of 100,000 devices is not held up by hashing; the default
		// cost 10 takes 60 ms a line. The credentials must be strong (12
		// characters of four classes), which is what protects them.
		CredentialsHashCost: 4,
		MaxBinarySize:       16 << 20,
		// A browser tab is one client; an operator's dozen tabs and a
		// few tools stay far below a user's share, which keeps one user
		// from taking what the agent holds for all.
		RealtimeMaxClients:        10_000,
		RealtimeMaxClientsPerUser: 100,
		RealtimeMaxSubscriptions:  100,
		RealtimeQueueSize:         1000,
		// CometD's own defaults: a held connect answered after 30 s,
		// and a client gone 10 s after its connect ended.
		RealtimeConnectTimeout: 30 * time.Second,
		RealtimeMaxInterval:    10 * time.Second,
		// Far above what any client of the API sends, and below what
		// makes the embedded store slow for everyone: it writes an
		// object of 10,000 members in 0.4 s and one of 20,000 in 1.7 s,
		// and every list of other tenants that reads past it pays again.
		MaxDocumentSize: 1 << 20,
		MaxJSONDepth:    32,
		MaxJSONMembers:  1000,
		MaxJSONArray:    10_000,
		MaxJSONValues:   20_000,
		MaxFragmentSize: 256 << 10,
		// The largest object of the OMA registry has 67 resources and
		// its largest file is under 100 KiB.
		MaxDDFSize:          4 << 20,
		MaxDDFObjects:       100,
		MaxDDFResources:     1000,
		MaxCSVLineSize:      64 << 10,
		MaxCSVFields:        1000,
		StoreRequestTimeout: 10 * time.Second,
		StoreCacheSize:      100_000,
		StoreCacheTTL:       5 * time.Second,
		ReplicaPoll:         500 * time.Millisecond,
		// A quarter of history by default: enough to look back on a
		// season, bounded so that a fleet's store does not grow forever.
		RetentionMeasurementDays: 90,
		RetentionEventDays:       90,
		RetentionAlarmDays:       90,
		RetentionOperationDays:   90,
		RetentionInterval:        time.Hour,
		// Five tries forgive typos; from then on each wrong guess doubles
		// the wait, so guessing a password gets nowhere.
		LoginFailures:   5,
		LoginMaxBackoff: 5 * time.Minute,
		// A day covers a decoder down over a night or a weekend's first
		// day; 100,000 values of a few hundred bytes are tens of MB of
		// store per tenant.
		DecodeBacklogSize: 100_000,
		DecodeRetryFor:    24 * time.Hour,
		DecodeMaxBackoff:  time.Minute,
	}
}

type setting struct {
	name  string // flag name; the environment variable is LWM2M_AGENT_ + upper snake case
	usage string
	str   *string
	b     *bool
	d     *time.Duration
	i     *int
}

func (c *Config) settings() []setting {
	return []setting{
		{name: "coap-addr", usage: "LWM2M server, CoAP/UDP (NO_SEC) address", str: &c.CoAPAddr},
		{name: "coaps-addr", usage: "LWM2M server, CoAP/DTLS (PSK) address", str: &c.CoAPSAddr},
		{name: "bootstrap-addr", usage: "bootstrap server, CoAP/UDP address (empty: no bootstrap server)", str: &c.BootstrapAddr},
		{name: "bootstraps-addr", usage: "bootstrap server, CoAP/DTLS address (empty: off)", str: &c.BootstrapSAddr},
		{name: "bootstrap-uri", usage: "the bootstrap server's URI as devices reach it, for generated bootstrap accounts (default coap://HOST:PORT of bootstrap-addr)", str: &c.BootstrapURI},
		{name: "bootstraps-uri", usage: "the secure bootstrap server's URI as devices reach it (default coaps://HOST:PORT of bootstraps-addr)", str: &c.BootstrapSURI},
		{name: "http-addr", usage: "HTTP API address (REST API, /health, /metrics)", str: &c.HTTPAddr},
		{name: "https-addr", usage: "HTTPS address of the same API, console and firmware downloads (empty: off); needs tls-cert-file and tls-key-file", str: &c.HTTPSAddr},
		{name: "tls-cert-file", usage: "PEM certificate (chain) of the HTTPS port", str: &c.TLSCertFile},
		{name: "tls-key-file", usage: "PEM private key of the HTTPS port", str: &c.TLSKeyFile},
		{name: "external-url", usage: "base of the links in API answers as clients reach the API, e.g. https://agent.example.com (default http://HOST:PORT of http-addr, 127.0.0.1 when it names no host)", str: &c.ExternalURL},
		{name: "mongo-uri", usage: "MongoDB URI; empty runs the embedded store in the data directory", str: &c.MongoURI},
		{name: "store-sync", usage: "the embedded store's durability: full (every answer after its change is on disk) or normal (changes survive the agent's crash; the last ones may be lost with the power)", str: &c.StoreSync},
		{name: "data-dir", usage: "data directory", str: &c.DataDir},
		{name: "dev", usage: "development setup: every port on loopback (127.0.0.1) unless its address is given, auto-registration on and the admin password " + DevAdminPassword + " unless set", b: &c.Dev},
		{name: "auto-register", usage: "accept endpoints nobody registered (development only)", b: &c.AutoRegister},
		{name: "admin-password", usage: "password of management/admin: set on an empty store (random if unset), and changed at start when it differs from the stored one", str: &c.AdminPassword},
		{name: "log-level", usage: "debug, info, warn or error", str: &c.LogLevel},
		{name: "log-format", usage: "text or json", str: &c.LogFormat},
		{name: "store-cache-size", usage: "devices whose endpoint, identities, registration parameters and empty operation queue the agent keeps in memory, so that their Registers and handshakes read nothing from the store (0: no cache)", i: &c.StoreCacheSize},
		{name: "retention-measurement-days", usage: "days a measurement is kept, by its time (0: forever)", i: &c.RetentionMeasurementDays},
		{name: "retention-event-days", usage: "days an event is kept, by its time (0: forever)", i: &c.RetentionEventDays},
		{name: "retention-alarm-days", usage: "days a cleared alarm is kept, by its last time (0: forever); open alarms are kept", i: &c.RetentionAlarmDays},
		{name: "retention-operation-days", usage: "days a SUCCESSFUL or FAILED operation is kept, by its last update (0: forever); the others are kept", i: &c.RetentionOperationDays},
		{name: "retention-interval", usage: "time between retention passes (the first runs 10 minutes after start, or after this interval if shorter)", d: &c.RetentionInterval},
		{name: "replica-id", usage: "with MongoDB, this agent's name among the replicas sharing the database, recorded in the registrations it holds (empty: the host name, else a random name at start)", str: &c.ReplicaID},
		{name: "replica-poll", usage: "with MongoDB without change streams, how often a replica reads the operations created through other replicas for its devices", d: &c.ReplicaPoll},
		{name: "store-cache-ttl", usage: "with MongoDB, how long the store cache keeps an answer, which another agent on the same database may change meanwhile (0: until the agent changes it); the embedded store's never expire", d: &c.StoreCacheTTL},
		{name: "shutdown-delay", usage: "after SIGTERM, go on serving this long while GET /health/ready answers 503, so that load balancers move traffic away first (0: stop at once)", d: &c.ShutdownDelay},
		{name: "pprof-addr", usage: "serve Go's profiler at this address (e.g. 127.0.0.1:6060); off when empty", str: &c.PprofAddr},
		{name: "request-timeout", usage: "timeout of one request to a device", d: &c.RequestTimeout},
		{name: "coap-idle-timeout", usage: "drop the CoAP exchange state of a device silent this long (its registration stays); above request-timeout", d: &c.IdleTimeout},
		{name: "nstart", usage: "requests in flight to one device", i: &c.NStart},
		{name: "max-registrations", usage: "devices one agent holds at most", i: &c.MaxRegistrations},
		{name: "operation-workers", usage: "devices receiving operations at once", i: &c.OperationWorkers},
		{name: "awake-time", usage: "how long a device listens after each Register or Update when neither its awakeTimeRegistrationParameter nor its registration says (0: always online)", d: &c.AwakeTime},
		{name: "max-operations-per-wakeup", usage: "operations sent to a device with an awake time after one Register or Update; the rest wait for the next", i: &c.MaxOperationsPerWakeup},
		{name: "operation-attempts", usage: "requests of one operation that may time out before it is FAILED", i: &c.OperationAttempts},
		{name: "executing-timeout", usage: "fail an operation EXECUTING this long (its outcome was lost); above max-request-timeout", d: &c.ExecutingTimeout},
		{name: "firmware-timeout", usage: "fail a firmware update not finished this long after it started (download, update and restart of the device included)", d: &c.FirmwareTimeout},
		{name: "firmware-max-size", usage: "largest firmware package, in bytes, an agent binary or an external one; larger ones fail the update", i: &c.FirmwareMaxSize},
		{name: "firmware-max-transfers", usage: "firmware package transfers served at once, over CoAP, CoAPS and HTTP; more are answered 5.03 / 503 with the seconds to wait", i: &c.FirmwareMaxTransfers},
		{name: "firmware-stall-timeout", usage: "free the slot of a firmware transfer whose device asked for nothing this long", d: &c.FirmwareStallTimeout},
		{name: "firmware-fetch-timeout", usage: "give up fetching an external firmware package after this long", d: &c.FirmwareFetchTimeout},
		{name: "firmware-coap-base", usage: "base of the coap:// package URIs given to devices, e.g. coap://agent.example.com:5783 (default from coap-addr)", str: &c.FirmwareCoAPBase},
		{name: "firmware-coaps-base", usage: "base of the coaps:// package URIs given to devices (default from coaps-addr)", str: &c.FirmwareCoAPSBase},
		{name: "firmware-http-base", usage: "base of the http:// package URIs given to devices (default: external-url when http, else from http-addr)", str: &c.FirmwareHTTPBase},
		{name: "firmware-delivery-method", usage: "how firmware reaches a device whose fwUpdateDeliveryMethod and /5/0/9 say nothing: PULL, PUSH or BOTH", str: &c.FirmwareDeliveryMethod},
		{name: "firmware-device-protocols", usage: "the pull protocols of a device whose fwUpdateSupportedDeviceProtocol and /5/0/8 say nothing: comma-separated COAP, COAPS, HTTP, HTTPS", str: &c.FirmwareDeviceProtocols},
		{name: "firmware-reset-mechanism", usage: "how a failed or cancelled firmware update resets a device without fwUpdateResetMechanism: PACKAGE, PACKAGE_URI, or empty for the method's own (PACKAGE after a push)", str: &c.FirmwareResetMechanism},
		{name: "firmware-https-base", usage: "base of the https:// package URIs given to devices, e.g. a TLS proxy in front of the HTTP port (default: external-url when https; none: HTTPS pull fails)", str: &c.FirmwareHTTPSBase},
		{name: "peer-rate", usage: "datagrams per second one peer address may send (negative: no limit)", i: &c.PeerRate},
		{name: "peer-burst", usage: "datagrams one peer address may send at once", i: &c.PeerBurst},
		{name: "endpoint-register-interval", usage: "after the burst, one Register naming an endpoint per this interval, from whatever address; more are answered 4.29 (0: no limit)", d: &c.EndpointRegisterInterval},
		{name: "endpoint-register-burst", usage: "Registers naming one endpoint accepted at once", i: &c.EndpointRegisterBurst},
		{name: "registration-event-interval", usage: "store one registration event and one security event per device per this interval, the next one counting those held back (0: every one)", d: &c.RegistrationEventInterval},
		{name: "bootstrap-request-interval", usage: "after the burst, one Bootstrap-Request for an endpoint per this interval, from whatever address; more are answered 4.29 (0: no limit)", d: &c.BootstrapRequestInterval},
		{name: "bootstrap-request-burst", usage: "Bootstrap-Requests for one endpoint accepted at once", i: &c.BootstrapRequestBurst},
		{name: "bootstrap-event-interval", usage: "store one start and one failure event per device per this interval of bootstrap sessions whose device never answered, the next one counting those held back (0: every one)", d: &c.BootstrapEventInterval},
		{name: "coap-max-pending-peers", usage: "peers without a registration (or bootstrap session) that may hold CoAP state at once, per plain port; beyond it the least recently active one loses it", i: &c.MaxPendingPeers},
		{name: "coap-pending-idle-timeout", usage: "drop the CoAP state of a peer without a registration silent this long", d: &c.PendingIdleTimeout},
		{name: "blockwise-max-body", usage: "largest block-wise body a device may send, in bytes (more is answered 4.13)", i: &c.BlockwiseMaxBody},
		{name: "blockwise-max-transfers-per-peer", usage: "unfinished block-wise transfers of one peer (more are answered 5.03)", i: &c.BlockwiseMaxTransfersPerPeer},
		{name: "blockwise-max-transfers", usage: "unfinished block-wise transfers of all peers, per server (more are answered 5.03)", i: &c.BlockwiseMaxTransfers},
		{name: "dtls-handshake-timeout", usage: "end a DTLS handshake unfinished after this long", d: &c.DTLSHandshakeTimeout},
		{name: "dtls-max-handshakes", usage: "DTLS handshakes under way at most (one starts only for a ClientHello that returned its cookie); more are dropped until one ends", i: &c.DTLSMaxHandshakes},
		{name: "dtls-max-handshakes-per-addr", usage: "DTLS handshakes under way from one IP address at most (any port); more are dropped until one ends", i: &c.DTLSMaxHandshakesPerAddr},
		{name: "dtls-session-idle-timeout", usage: "close a DTLS session silent this long (the device handshakes again)", d: &c.DTLSSessionIdleTimeout},
		{name: "dtls-park-after", usage: "park a DTLS session silent this long: only its state is kept, and the device's next record resumes it without a handshake (0: never)", d: &c.DTLSParkAfter},
		{name: "dtls-parked-max", usage: "parked DTLS sessions held in memory; beyond it the least recently parked are kept in the store only", i: &c.DTLSParkedMax},
		{name: "dtls-state-key", usage: "64 hex digits sealing the DTLS session states in the store, the same for every replica (default: generated once in the data directory)", str: &c.DTLSStateKey},
		{name: "max-request-timeout", usage: "largest lwm2mRequestTimeout a device's registration parameters may ask for", d: &c.MaxRequestTimeout},
		{name: "plugins-config", usage: "JSON file declaring mapping, custom action and decoder plugins (empty: none)", str: &c.PluginsConfig},
		{name: "decode-backlog-size", usage: "raw values waiting for decoders and custom action plugins per tenant, at most; more are dropped with a mapping alarm", i: &c.DecodeBacklogSize},
		{name: "decode-retry-for", usage: "how long a value is retried while its decoder or custom action plugin fails; then it is dropped with a mapping alarm", d: &c.DecodeRetryFor},
		{name: "decode-max-backoff", usage: "longest wait between the tries of a decoder or custom action plugin that keeps failing (the wait starts at 200ms and doubles)", d: &c.DecodeMaxBackoff},
		{name: "bundled-plugins", usage: "how the bundled mapping and custom action plugins run: process (the agent's executable in plugin mode) or inprocess", str: &c.BundledPlugins},
		{name: "login-failures", usage: "wrong credentials in a row from one address or for one user before the API answers 429 with a backoff (negative: no backoff)", i: &c.LoginFailures},
		{name: "login-max-backoff", usage: "longest backoff after repeated wrong credentials (it starts at 1s and doubles with each further failure)", d: &c.LoginMaxBackoff},
		{name: "max-binary-size", usage: "largest binary (firmware, files) the API stores, in bytes", i: &c.MaxBinarySize},
		{name: "realtime-max-clients", usage: "realtime notification clients (Bayeux handshakes) the agent holds at once; more are refused until one ends", i: &c.RealtimeMaxClients},
		{name: "realtime-max-clients-per-user", usage: "realtime notification clients one user may hold at once", i: &c.RealtimeMaxClientsPerUser},
		{name: "realtime-max-subscriptions", usage: "channels one realtime client may subscribe to", i: &c.RealtimeMaxSubscriptions},
		{name: "realtime-queue-size", usage: "notifications waiting for one realtime client; a client whose queue is full is dropped (it must handshake again)", i: &c.RealtimeQueueSize},
		{name: "realtime-connect-timeout", usage: "how long a realtime client's /meta/connect is held when nothing comes (the advice's timeout)", d: &c.RealtimeConnectTimeout},
		{name: "realtime-max-interval", usage: "how long a realtime client may go without a /meta/connect before it is removed (the advice's maxInterval)", d: &c.RealtimeMaxInterval},
		{name: "max-document-size", usage: "largest JSON request body, in bytes (413 above)", i: &c.MaxDocumentSize},
		{name: "max-json-depth", usage: "deepest nesting of objects and arrays in a JSON body (422 deeper)", i: &c.MaxJSONDepth},
		{name: "max-json-members", usage: "most members of one object in a JSON body (422 above)", i: &c.MaxJSONMembers},
		{name: "max-json-array", usage: "most elements of one array in a JSON body (422 above)", i: &c.MaxJSONArray},
		{name: "max-json-values", usage: "most members and array elements of a JSON body in all (422 above)", i: &c.MaxJSONValues},
		{name: "max-fragment-size", usage: "largest value of one top-level member (fragment) of a JSON body, in bytes (413 above)", i: &c.MaxFragmentSize},
		{name: "max-ddf-size", usage: "largest device protocol (DDF) upload, in bytes (413 above)", i: &c.MaxDDFSize},
		{name: "max-ddf-objects", usage: "most objects in one device protocol (DDF) upload (422 above)", i: &c.MaxDDFObjects},
		{name: "max-ddf-resources", usage: "most resources of one object in a device protocol (DDF) upload (422 above)", i: &c.MaxDDFResources},
		{name: "max-csv-line-size", usage: "longest record of a bulk registration file, in bytes (413 above)", i: &c.MaxCSVLineSize},
		{name: "max-csv-fields", usage: "most fields of one record of a bulk registration file (422 above)", i: &c.MaxCSVFields},
		{name: "store-request-timeout", usage: "longest the store may work for one API request, bulk registration and binaries excepted (503 after)", d: &c.StoreRequestTimeout},
		{name: "credentials-hash-cost", usage: "bcrypt cost of the device credentials stored by bulk registration (4 to 31; each step doubles import time per line)", i: &c.CredentialsHashCost},
	}
}

// DevAdminPassword is the admin password of the development setup (Dev).
const DevAdminPassword = "admin-dev-password"

// ApplyDev turns the development setup on when Dev is set: a known admin
// password and auto-registration make a first try easy, so nothing may
// reach the agent from another machine. Every listen address that was not
// given (explicit reports whether a setting came from a flag or the
// environment) moves to loopback; a given address is kept as the operator
// chose it. It returns the given addresses that are not on loopback.
func (c *Config) ApplyDev(explicit func(name string) bool) (exposed []string) {
	if !c.Dev {
		return nil
	}
	if !explicit("auto-register") {
		c.AutoRegister = true
	}
	if !explicit("admin-password") {
		c.AdminPassword = DevAdminPassword
	}
	for _, a := range c.listenAddrs() {
		if *a.v == "" {
			continue // off
		}
		host, port, err := net.SplitHostPort(*a.v)
		if err != nil {
			continue // Validate names it
		}
		if !explicit(a.name) {
			*a.v = net.JoinHostPort("127.0.0.1", port)
			continue
		}
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			exposed = append(exposed, a.name+"="+*a.v)
		}
	}
	return exposed
}

type listenAddr struct {
	name string
	v    *string
}

// listenAddrs are the settings of every socket the agent listens on.
func (c *Config) listenAddrs() []listenAddr {
	return []listenAddr{
		{"coap-addr", &c.CoAPAddr}, {"coaps-addr", &c.CoAPSAddr},
		{"bootstrap-addr", &c.BootstrapAddr}, {"bootstraps-addr", &c.BootstrapSAddr},
		{"http-addr", &c.HTTPAddr}, {"https-addr", &c.HTTPSAddr}, {"pprof-addr", &c.PprofAddr},
	}
}

// EnvName returns the environment variable of a flag name.
func EnvName(flag string) string {
	return "LWM2M_AGENT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Bind registers the flags on fs with c's current values as defaults.
func (c *Config) Bind(fs *pflag.FlagSet) {
	for _, s := range c.settings() {
		usage := s.usage + " (" + EnvName(s.name) + ")"
		switch {
		case s.str != nil:
			fs.StringVar(s.str, s.name, *s.str, usage)
		case s.b != nil:
			fs.BoolVar(s.b, s.name, *s.b, usage)
		case s.d != nil:
			fs.DurationVar(s.d, s.name, *s.d, usage)
		case s.i != nil:
			fs.IntVar(s.i, s.name, *s.i, usage)
		}
	}
}

// LoadEnv applies the environment to every setting whose flag was not set
// on the command line (flags win over the environment). fs may be nil.
func (c *Config) LoadEnv(lookup func(string) (string, bool), fs *pflag.FlagSet) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var errs []error
	for _, s := range c.settings() {
		if fs != nil && fs.Changed(s.name) {
			continue
		}
		env := EnvName(s.name)
		v, ok := lookup(env)
		if !ok {
			continue
		}
		switch {
		case s.str != nil:
			*s.str = v
		case s.b != nil:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", env, v))
				continue
			}
			*s.b = b
		case s.d != nil:
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration like 30s", env, v))
				continue
			}
			*s.d = d
		case s.i != nil:
			i, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not an integer", env, v))
				continue
			}
			*s.i = i
		}
	}
	return errors.Join(errs...)
}

// Validate checks every setting and reports all problems together.
func (c *Config) Validate() error {
	var errs []error
	for _, a := range []struct{ name, v string }{
		{"coap-addr", c.CoAPAddr}, {"http-addr", c.HTTPAddr},
	} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", a.name, a.v, err))
		}
	}
	switch {
	case c.HTTPSAddr == "" && (c.TLSCertFile != "" || c.TLSKeyFile != ""):
		errs = append(errs, errors.New("tls-cert-file, tls-key-file: set without https-addr"))
	case c.HTTPSAddr != "":
		if _, _, err := net.SplitHostPort(c.HTTPSAddr); err != nil {
			errs = append(errs, fmt.Errorf("https-addr: %q: %w", c.HTTPSAddr, err))
		}
		if c.TLSCertFile == "" || c.TLSKeyFile == "" {
			errs = append(errs, errors.New("https-addr: needs tls-cert-file and tls-key-file"))
		} else if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("tls-cert-file %s, tls-key-file %s: %w", c.TLSCertFile, c.TLSKeyFile, err))
		}
	}
	if c.MongoURI == "" && c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: needed for the embedded store"))
	}
	if c.StoreSync != StoreSyncFull && c.StoreSync != StoreSyncNormal {
		errs = append(errs, fmt.Errorf("store-sync: %q must be %s or %s", c.StoreSync, StoreSyncFull, StoreSyncNormal))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request-timeout: %v must be positive", c.RequestTimeout))
	}
	if c.IdleTimeout <= c.RequestTimeout {
		errs = append(errs, fmt.Errorf("coap-idle-timeout: %v must be longer than request-timeout %v", c.IdleTimeout, c.RequestTimeout))
	}
	if c.NStart < 1 {
		errs = append(errs, fmt.Errorf("nstart: %d must be at least 1", c.NStart))
	}
	if c.MaxRegistrations < 1 {
		errs = append(errs, fmt.Errorf("max-registrations: %d must be at least 1", c.MaxRegistrations))
	}
	if c.PeerRate == 0 || c.PeerBurst < 1 {
		errs = append(errs, fmt.Errorf("peer-rate, peer-burst: %d/s and %d must be positive (a negative rate turns the limit off)", c.PeerRate, c.PeerBurst))
	}
	if c.EndpointRegisterInterval < 0 || c.EndpointRegisterBurst < 1 {
		errs = append(errs, fmt.Errorf("endpoint-register-interval, endpoint-register-burst: %v and %d must be 0 (no limit) or positive, and at least 1", c.EndpointRegisterInterval, c.EndpointRegisterBurst))
	}
	if c.RegistrationEventInterval < 0 {
		errs = append(errs, fmt.Errorf("registration-event-interval: %v must be 0 (every event) or positive", c.RegistrationEventInterval))
	}
	if c.BootstrapRequestInterval < 0 || c.BootstrapRequestBurst < 1 {
		errs = append(errs, fmt.Errorf("bootstrap-request-interval, bootstrap-request-burst: %v and %d must be 0 (no limit) or positive, and at least 1", c.BootstrapRequestInterval, c.BootstrapRequestBurst))
	}
	if c.BootstrapEventInterval < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-event-interval: %v must be 0 (every event) or positive", c.BootstrapEventInterval))
	}
	if c.MaxPendingPeers < 1 {
		errs = append(errs, fmt.Errorf("coap-max-pending-peers: %d must be at least 1", c.MaxPendingPeers))
	}
	if c.PendingIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("coap-pending-idle-timeout: %v must be positive", c.PendingIdleTimeout))
	}
	if c.BlockwiseMaxBody < 1024 {
		errs = append(errs, fmt.Errorf("blockwise-max-body: %d must be at least 1024 (one block)", c.BlockwiseMaxBody))
	}
	if c.BlockwiseMaxTransfersPerPeer < 1 || c.BlockwiseMaxTransfers < c.BlockwiseMaxTransfersPerPeer {
		errs = append(errs, fmt.Errorf("blockwise-max-transfers-per-peer, blockwise-max-transfers: %d and %d must be at least 1 and the second not below the first", c.BlockwiseMaxTransfersPerPeer, c.BlockwiseMaxTransfers))
	}
	if c.MaxRequestTimeout <= 0 || c.MaxRequestTimeout > math.MaxInt32*time.Millisecond {
		errs = append(errs, fmt.Errorf("max-request-timeout: %v must be positive and at most %v", c.MaxRequestTimeout, math.MaxInt32*time.Millisecond))
	} else if c.MaxRequestTimeout < c.RequestTimeout {
		errs = append(errs, fmt.Errorf("max-request-timeout: %v must not be below request-timeout %v", c.MaxRequestTimeout, c.RequestTimeout))
	}
	if c.CredentialsHashCost < MinCredentialsHashCost || c.CredentialsHashCost > MaxCredentialsHashCost {
		errs = append(errs, fmt.Errorf("credentials-hash-cost: %d must be between %d and %d", c.CredentialsHashCost, MinCredentialsHashCost, MaxCredentialsHashCost))
	}
	if c.LoginFailures == 0 {
		errs = append(errs, errors.New("login-failures: 0 would refuse every login; use a positive number, or a negative one for no backoff"))
	}
	if c.LoginMaxBackoff < time.Second {
		errs = append(errs, fmt.Errorf("login-max-backoff: %v must be at least 1s", c.LoginMaxBackoff))
	}
	if c.FirmwareMaxSize < 1 || c.FirmwareMaxTransfers < 1 || c.FirmwareStallTimeout <= 0 || c.FirmwareFetchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("firmware-max-size %d, firmware-max-transfers %d, firmware-stall-timeout %v, firmware-fetch-timeout %v: each must be positive",
			c.FirmwareMaxSize, c.FirmwareMaxTransfers, c.FirmwareStallTimeout, c.FirmwareFetchTimeout))
	}
	for name, base := range map[string]string{"firmware-coap-base": c.FirmwareCoAPBase, "firmware-coaps-base": c.FirmwareCoAPSBase,
		"firmware-http-base": c.FirmwareHTTPBase, "firmware-https-base": c.FirmwareHTTPSBase} {
		if u, err := url.Parse(base); base != "" && (err != nil || u.Host == "" || u.User != nil || !strings.HasPrefix(name, "firmware-"+u.Scheme+"-")) {
			errs = append(errs, fmt.Errorf("%s: %q must be SCHEME://HOST[:PORT] of its scheme, without user", name, base))
		}
	}
	if c.MaxBinarySize < 1 {
		errs = append(errs, fmt.Errorf("max-binary-size: %d must be at least 1 byte", c.MaxBinarySize))
	}
	if m := strings.ToUpper(c.FirmwareDeliveryMethod); m != "PULL" && m != "PUSH" && m != "BOTH" {
		errs = append(errs, fmt.Errorf("firmware-delivery-method: %q is none of PULL, PUSH, BOTH", c.FirmwareDeliveryMethod))
	}
	for _, p := range strings.Split(c.FirmwareDeviceProtocols, ",") {
		if p := strings.ToUpper(strings.TrimSpace(p)); p != "COAP" && p != "COAPS" && p != "HTTP" && p != "HTTPS" {
			errs = append(errs, fmt.Errorf("firmware-device-protocols: %q is none of COAP, COAPS, HTTP, HTTPS", p))
		}
	}
	if m := strings.ToUpper(c.FirmwareResetMechanism); m != "" && m != "PACKAGE" && m != "PACKAGE_URI" {
		errs = append(errs, fmt.Errorf("firmware-reset-mechanism: %q is none of PACKAGE, PACKAGE_URI (or empty)", c.FirmwareResetMechanism))
	}
	if c.RealtimeConnectTimeout < time.Second || c.RealtimeConnectTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("realtime-connect-timeout: %v must be between 1s and 1h", c.RealtimeConnectTimeout))
	}
	if c.RealtimeMaxInterval < time.Second {
		errs = append(errs, fmt.Errorf("realtime-max-interval: %v must be at least 1s", c.RealtimeMaxInterval))
	}
	for _, l := range []struct {
		name   string
		v, min int
	}{
		// a body must hold at least a small object, a document one object
		{"max-document-size", c.MaxDocumentSize, 1 << 10}, {"max-json-depth", c.MaxJSONDepth, 2},
		{"max-json-members", c.MaxJSONMembers, 16}, {"max-json-array", c.MaxJSONArray, 16},
		{"max-json-values", c.MaxJSONValues, 16}, {"max-fragment-size", c.MaxFragmentSize, 1 << 10},
		{"max-ddf-size", c.MaxDDFSize, 4 << 10}, {"max-ddf-objects", c.MaxDDFObjects, 1},
		{"max-ddf-resources", c.MaxDDFResources, 1}, {"max-csv-line-size", c.MaxCSVLineSize, 1 << 10},
		{"max-csv-fields", c.MaxCSVFields, 16},
		{"realtime-max-clients", c.RealtimeMaxClients, 1}, {"realtime-max-clients-per-user", c.RealtimeMaxClientsPerUser, 1},
		{"realtime-max-subscriptions", c.RealtimeMaxSubscriptions, 1}, {"realtime-queue-size", c.RealtimeQueueSize, 1},
	} {
		if l.v < l.min {
			errs = append(errs, fmt.Errorf("%s: %d must be at least %d", l.name, l.v, l.min))
		}
	}
	if c.MaxDDFSize > ddfSizeCeiling {
		errs = append(errs, fmt.Errorf("max-ddf-size: %d must be at most %d, the most the DDF parser reads", c.MaxDDFSize, ddfSizeCeiling))
	}
	if c.MaxDocumentSize > documentSizeCeiling {
		errs = append(errs, fmt.Errorf("max-document-size: %d must be at most %d: the store takes no larger document", c.MaxDocumentSize, documentSizeCeiling))
	}
	// MongoDB refuses documents nested deeper than 100 levels, and a
	// stored body sits a level or two below its document's top.
	if c.MaxJSONDepth > jsonDepthCeiling {
		errs = append(errs, fmt.Errorf("max-json-depth: %d must be at most %d: the store nests no deeper", c.MaxJSONDepth, jsonDepthCeiling))
	}
	if c.DecodeBacklogSize < 1 {
		errs = append(errs, fmt.Errorf("decode-backlog-size: %d must be at least 1", c.DecodeBacklogSize))
	}
	if c.DecodeRetryFor < time.Second {
		errs = append(errs, fmt.Errorf("decode-retry-for: %v must be at least 1s", c.DecodeRetryFor))
	}
	if c.DecodeMaxBackoff < 200*time.Millisecond {
		errs = append(errs, fmt.Errorf("decode-max-backoff: %v must be at least 200ms, the first wait", c.DecodeMaxBackoff))
	}
	if c.StoreCacheSize < 0 {
		errs = append(errs, fmt.Errorf("store-cache-size: %d must be 0 (no cache) or positive", c.StoreCacheSize))
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("shutdown-delay: %v must be 0 or positive", c.ShutdownDelay))
	}
	if c.ReplicaPoll <= 0 {
		errs = append(errs, fmt.Errorf("replica-poll: %v must be positive", c.ReplicaPoll))
	}
	if c.StoreCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("store-cache-ttl: %v must be 0 (no expiry) or positive", c.StoreCacheTTL))
	}
	for _, r := range []struct {
		name string
		days int
	}{{"retention-measurement-days", c.RetentionMeasurementDays}, {"retention-event-days", c.RetentionEventDays},
		{"retention-alarm-days", c.RetentionAlarmDays}, {"retention-operation-days", c.RetentionOperationDays}} {
		if r.days < 0 || r.days > 100*365 {
			errs = append(errs, fmt.Errorf("%s: %d must be 0 (keep forever) or a number of days up to %d", r.name, r.days, 100*365))
		}
	}
	if c.RetentionInterval < time.Second {
		errs = append(errs, fmt.Errorf("retention-interval: %v must be at least 1s", c.RetentionInterval))
	}
	if c.StoreRequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("store-request-timeout: %v must be positive", c.StoreRequestTimeout))
	}
	if c.OperationWorkers < 1 {
		errs = append(errs, fmt.Errorf("operation-workers: %d must be at least 1", c.OperationWorkers))
	}
	if c.AwakeTime < 0 || c.AwakeTime > math.MaxInt32*time.Millisecond {
		errs = append(errs, fmt.Errorf("awake-time: %v must be 0 (always online) or positive, at most %v", c.AwakeTime, math.MaxInt32*time.Millisecond))
	}
	if c.MaxOperationsPerWakeup < 1 {
		errs = append(errs, fmt.Errorf("max-operations-per-wakeup: %d must be at least 1", c.MaxOperationsPerWakeup))
	}
	if c.OperationAttempts < 1 {
		errs = append(errs, fmt.Errorf("operation-attempts: %d must be at least 1", c.OperationAttempts))
	}
	if c.ExecutingTimeout <= c.MaxRequestTimeout || c.ExecutingTimeout <= c.RequestTimeout {
		errs = append(errs, fmt.Errorf("executing-timeout: %v must be longer than max-request-timeout %v and request-timeout %v (an answer may still come until then)",
			c.ExecutingTimeout, c.MaxRequestTimeout, c.RequestTimeout))
	}
	if c.FirmwareTimeout <= c.MaxRequestTimeout || c.FirmwareTimeout <= c.RequestTimeout {
		errs = append(errs, fmt.Errorf("firmware-timeout: %v must be longer than max-request-timeout %v and request-timeout %v",
			c.FirmwareTimeout, c.MaxRequestTimeout, c.RequestTimeout))
	}
	// an empty address turns its port off
	for _, a := range []struct{ name, v string }{
		{"coaps-addr", c.CoAPSAddr}, {"bootstrap-addr", c.BootstrapAddr}, {"bootstraps-addr", c.BootstrapSAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w (empty turns it off)", a.name, a.v, err))
		}
	}
	if c.BootstrapAddr == "" && c.BootstrapSAddr != "" {
		errs = append(errs, errors.New("bootstraps-addr: the secure bootstrap port needs bootstrap-addr too"))
	}
	for _, u := range []struct{ name, v, scheme string }{
		{"bootstrap-uri", c.BootstrapURI, "coap://"}, {"bootstraps-uri", c.BootstrapSURI, "coaps://"},
	} {
		if u.v != "" && !strings.HasPrefix(u.v, u.scheme) {
			errs = append(errs, fmt.Errorf("%s: %q does not start with %s", u.name, u.v, u.scheme))
		}
	}
	if c.ExternalURL != "" {
		if err := checkExternalURL(c.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("external-url: %q: %w", c.ExternalURL, err))
		}
	}
	if c.DTLSHandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dtls-handshake-timeout: %v must be positive", c.DTLSHandshakeTimeout))
	}
	if c.DTLSMaxHandshakes < 1 {
		errs = append(errs, fmt.Errorf("dtls-max-handshakes: %d must be at least 1", c.DTLSMaxHandshakes))
	}
	if c.DTLSMaxHandshakesPerAddr < 1 {
		errs = append(errs, fmt.Errorf("dtls-max-handshakes-per-addr: %d must be at least 1", c.DTLSMaxHandshakesPerAddr))
	}
	if c.DTLSSessionIdleTimeout <= c.RequestTimeout {
		errs = append(errs, fmt.Errorf("dtls-session-idle-timeout: %v must be longer than request-timeout %v", c.DTLSSessionIdleTimeout, c.RequestTimeout))
	}
	switch c.BundledPlugins {
	case BundledProcess, BundledInProcess:
	default:
		errs = append(errs, fmt.Errorf("bundled-plugins: %q is not %s or %s", c.BundledPlugins, BundledProcess, BundledInProcess))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// checkExternalURL accepts an absolute http or https URL that every link
// can be appended to: a query or fragment would end up in the middle of
// each link, and credentials would be handed to every client.
func checkExternalURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("not an http:// or https:// URL")
	case u.Host == "" || u.Opaque != "":
		return errors.New("names no host")
	case u.User != nil:
		return errors.New("carries credentials")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("has a query")
	case u.Fragment != "" || strings.Contains(v, "#"):
		return errors.New("has a fragment")
	}
	return nil
}
