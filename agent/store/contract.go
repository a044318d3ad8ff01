package store

import (
	"context"
	"io"
	"time"
)

// The interfaces below are the storage contract: what the rest of the
// agent may ask of a store, one interface per concern, each implemented by
// every engine (the embedded one and MongoDB) and held to the same
// conformance tests. Callers depend on the narrowest interface they need,
// so that a part that only reads endpoints cannot reach the operations.
//
// Rules every engine keeps:
//   - every method takes the caller's tenant (or works across tenants
//     only where its name says so) and never returns another tenant's data;
//   - a method that changes data returns only once the change is durable:
//     a process killed afterwards finds it at the next open;
//   - a missing object is ErrNotFound, a taken unique key ErrConflict,
//     input that cannot be stored ErrInvalid, wrapped with context;
//   - fragments are JSON-shaped values (maps, slices, strings, numbers,
//     booleans, time.Time, nil); field names are validated above the store.

// Devices are the managed objects with their external IDs, and the
// creation and removal of a device with everything bound to it.
type Devices interface {
	CreateManagedObject(ctx context.Context, tenant string, mo ManagedObject) (ManagedObject, error)
	GetManagedObject(ctx context.Context, tenant, id string) (ManagedObject, error)
	UpdateManagedObject(ctx context.Context, tenant, id string, fields map[string]any) (ManagedObject, error)
	UpdateFragments(ctx context.Context, tenant, id string, fragments map[string]any) error
	// UpdateFragmentsMany and UpdateFieldsMany change many devices of one
	// tenant in one call (the state and inventory writers' batches) and
	// name the ids that no longer exist.
	UpdateFragmentsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error)
	UpdateFieldsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error)
	DeleteManagedObject(ctx context.Context, tenant, id string) (DeletedDevice, error)
	ListManagedObjects(ctx context.Context, tenant string, f ManagedObjectFilter) ([]ManagedObject, int64, error)

	CreateExternalID(ctx context.Context, tenant string, x ExternalID) error
	GetExternalID(ctx context.Context, tenant, typ, ext string) (ExternalID, error)
	ExternalIDsOf(ctx context.Context, tenant, id string) ([]ExternalID, error)
	DeleteExternalID(ctx context.Context, tenant, typ, ext string) error

	// CreateDevice auto-registers an endpoint with a NO_SEC record;
	// CreateIncompleteDevice, CompleteDevice and RemoveIncompleteDevice
	// make an import line all or nothing (see devicecreate.go).
	CreateDevice(ctx context.Context, tenant, endpoint string) (id string, err error)
	CreateIncompleteDevice(ctx context.Context, tenant string, d NewDevice) (id string, err error)
	CompleteDevice(ctx context.Context, tenant, deviceID string) error
	RemoveIncompleteDevice(ctx context.Context, tenant, id string) error
	AdoptNoSecDevice(ctx context.Context, tenant, id, endpoint string) (adopted bool, err error)
}

// Identities bind endpoints and PSK identities to devices across tenants:
// a device's exchange starts with one of these lookups.
type Identities interface {
	DeviceByEndpoint(ctx context.Context, endpoint string) (tenant, id string, err error)
	DeviceByPSKIdentity(ctx context.Context, kind, identity string) (tenant, id string, err error)
	BindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error
	UnbindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error
	ReleasePendingIdentities(ctx context.Context, tenant, id string) error
}

// Registrations are the devices' registration records (security mode,
// keys, bootstrap parameters) and the live registrations restored at
// start.
type Registrations interface {
	SaveDeviceRegistration(ctx context.Context, tenant, deviceID string, r DeviceRegistration) error
	SetDeviceSerialization(ctx context.Context, tenant, deviceID, format string) error
	DeviceRegistrationOf(ctx context.Context, tenant, deviceID string) (DeviceRegistration, error)
	DeviceSettings(ctx context.Context, tenant, deviceID string) (DeviceRegistration, error)
	LiveRegistrations(ctx context.Context, fn func(LiveRegistration) error) error
}

// Operations are the operations with their per-device queues.
type Operations interface {
	CreateOperation(ctx context.Context, tenant string, op Operation) (Operation, error)
	CreateOperations(ctx context.Context, tenant string, ops []Operation) ([]Operation, error)
	GetOperation(ctx context.Context, tenant, id string) (Operation, error)
	ListOperations(ctx context.Context, tenant string, f OperationFilter) ([]Operation, int64, error)
	SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error
	SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error
	Transition(ctx context.Context, tenant string, cur Operation, status, result, failureReason string) error
	Unsend(ctx context.Context, tenant string, cur Operation) error
	// Executed moves cur, PENDING, through EXECUTING to its outcome,
	// status SUCCESSFUL or FAILED, in one change, counting the attempt
	// as EXECUTING does: for a request that was answered before its
	// EXECUTING was written. ErrConflict when the operation is no longer
	// PENDING, and nothing changes.
	Executed(ctx context.Context, tenant string, cur Operation, status, result, failureReason string) error
	SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error
	Executing(ctx context.Context, limit int) ([]TenantOperation, error)
	ExecutingBefore(ctx context.Context, t time.Time, limit int) ([]TenantOperation, error)
	Pending(ctx context.Context, tenant, deviceID string, limit int) ([]Operation, error)
	PendingCount(ctx context.Context, tenant, deviceID string) (int, error)
	QueueOf(ctx context.Context, tenant, deviceID string, limit int) (DeviceQueue, error)
	QueuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) error
	RecentOperations(ctx context.Context, tenant, deviceID string, limit int) ([]Operation, error)
	PostOperations(ctx context.Context, tenant string) ([]string, error)
	SetPostOperations(ctx context.Context, tenant string, cmds []string) error
}

// Telemetry is what devices report: measurements, events, alarms and the
// last known values of their resources.
type Telemetry interface {
	AddMeasurements(ctx context.Context, tenant string, ms []Measurement) ([]string, error)
	GetMeasurement(ctx context.Context, tenant, id string) (Measurement, error)
	ListMeasurements(ctx context.Context, tenant string, f MeasurementFilter) ([]Measurement, int64, error)

	CreateEvent(ctx context.Context, tenant string, e Event) (Event, error)
	CreateEvents(ctx context.Context, tenant string, evs []Event) ([]Event, error)
	GetEvent(ctx context.Context, tenant, id string) (Event, error)
	ListEvents(ctx context.Context, tenant string, f EventFilter) ([]Event, int64, error)

	// RaiseAlarm keeps one ACTIVE alarm per source and type: a repeat
	// increments its count, atomically under concurrent raises.
	RaiseAlarm(ctx context.Context, tenant string, a Alarm) (Alarm, error)
	GetAlarm(ctx context.Context, tenant, id string) (Alarm, error)
	UpdateAlarm(ctx context.Context, tenant, id string, u AlarmUpdate) (Alarm, error)
	// ClearAlarm clears the open alarm of a type on a source and returns
	// it as cleared; the zero Alarm says none was open.
	ClearAlarm(ctx context.Context, tenant, source, typ string) (Alarm, error)
	ListAlarms(ctx context.Context, tenant string, f AlarmFilter) ([]Alarm, int64, error)

	SaveValues(ctx context.Context, tenant, deviceID string, vals []ResourceValue) error
	Values(ctx context.Context, tenant, deviceID string) ([]ResourceValue, error)
}

// States are the devices' registration state, as the state writer
// stores it: their fragments and their lifecycle events together.
type States interface {
	// SaveStates merges fragments into devices of the tenant, as
	// UpdateFragmentsMany does, and stores events, as CreateEvents does,
	// in one call: missing names the devices that no longer exist, whose
	// events are stored all the same; stored are the events as stored,
	// with their ids, in the order given. Input that cannot be stored (a
	// fragment or an event) is ErrInvalid, and nothing is written. The
	// embedded engine writes both in one change, all or nothing; MongoDB
	// writes the fragments, then the events, so that a failure between
	// them leaves the fragments without the events.
	SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []Event) (missing []string, stored []Event, err error)
	// NewDeviceID reserves the id of a device that SaveNewStates will
	// create: unique among the ids of every object, never handed out
	// twice, and naming nothing until the device is created.
	NewDeviceID(ctx context.Context, tenant string) (string, error)
	// SaveNewStates is SaveStates that also creates auto-registered
	// devices (AutoRegistered) under the ids reserved for them, so that a
	// new endpoint's device, its first state and its event are written
	// together. A creation whose endpoint the tenant already has a device
	// for is not made, and nothing of the batch's for its id is written
	// (fragments, events): conflicts names those ids. The embedded
	// engine writes everything in one change; MongoDB creates the devices
	// one by one, its unique index of external IDs deciding between
	// replicas, then saves the states.
	SaveNewStates(ctx context.Context, tenant string, created []NewEndpoint, fragments map[string]map[string]any, events []Event) (missing, conflicts []string, stored []Event, err error)
}

// Binaries are files (firmware images) stored in chunks and streamed.
type Binaries interface {
	CreateBinary(ctx context.Context, tenant string, b Binary, r io.Reader, max int64) (Binary, error)
	GetBinary(ctx context.Context, tenant, id string) (Binary, error)
	OpenBinary(ctx context.Context, tenant, id string) (Binary, io.ReadCloser, error)
	ReadBinary(ctx context.Context, tenant, id string, max int64) (Binary, []byte, error)
	ListBinaries(ctx context.Context, tenant string, p Page) ([]Binary, int64, error)
	DeleteBinary(ctx context.Context, tenant, id string) error
}

// FirmwareGrants are the grants by which devices fetch firmware packages
// from the agent, and the agent's copies of external packages (see
// fwgrants.go): kept in the store so that every replica, and the agent
// after a restart, serves them. A grant whose Expires has passed is
// gone for every reader, whether or not it has been removed yet.
type FirmwareGrants interface {
	// PutFirmwareGrant creates the grant of g.Key, or replaces it.
	PutFirmwareGrant(ctx context.Context, g FirmwareGrant) error
	// FirmwareGrant returns the grant of key, across tenants (a device's
	// request names no tenant); one expired at now is ErrNotFound.
	FirmwareGrant(ctx context.Context, key string, now time.Time) (FirmwareGrant, error)
	// RevokeFirmwareGrants removes the tenant's grants of an operation
	// (copies, which name no operation, stay) and says how many.
	RevokeFirmwareGrants(ctx context.Context, tenant, operationID string) (int, error)
	// ExpiredFirmwareGrants lists, across tenants, at most limit grants
	// that expired before before, those expired longest first.
	ExpiredFirmwareGrants(ctx context.Context, before time.Time, limit int) ([]FirmwareGrant, error)
	// DeleteFirmwareGrant removes the grant of key if it still expires
	// at expires, so that a sweep never removes a grant extended since it
	// was listed; deleted says whether it did.
	DeleteFirmwareGrant(ctx context.Context, key string, expires time.Time) (deleted bool, err error)
}

// ProtocolRecords store the tenants' device protocols, one record per
// tenant and object ID. Protocols (protocols.go) is built on them: it
// encodes what a record holds, resolves inheritance and caches, so that
// an engine knows neither the object model nor the functionality type.
type ProtocolRecords interface {
	// PutProtocolRecord creates or replaces the record of r.Tenant and
	// r.ObjectID.
	PutProtocolRecord(ctx context.Context, r ProtocolRecord) error
	GetProtocolRecord(ctx context.Context, tenant string, objectID uint16) (ProtocolRecord, error)
	DeleteProtocolRecord(ctx context.Context, tenant string, objectID uint16) error
	// FirstProtocolRecord returns the record of objectID of the first
	// tenant, by tenant ID, that has one, across tenants.
	FirstProtocolRecord(ctx context.Context, objectID uint16) (ProtocolRecord, error)
	// ListProtocolRecords lists the tenant's records by object ID, one
	// page at a time; total is -1 unless p.WithTotal.
	ListProtocolRecords(ctx context.Context, tenant string, p Page) ([]ProtocolRecord, int64, error)
	// ProtocolObjectIDs lists the object IDs of the tenant's records, in
	// order (at most 65536: object IDs are 16 bits).
	ProtocolObjectIDs(ctx context.Context, tenant string) ([]uint16, error)
}

// Tenants are the tenants and their users; credentials are stored hashed
// and never returned.
type Tenants interface {
	CreateTenant(ctx context.Context, id, adminName, adminPass string) (Tenant, error)
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants lists every tenant, the management tenant included, by
	// ID, a page at a time; total is -1 unless p.WithTotal.
	ListTenants(ctx context.Context, p Page) ([]Tenant, int64, error)
	CreateUser(ctx context.Context, tenant, userName, password string, roles []string) error
	SetPassword(ctx context.Context, tenant, userName, password string) error
	EnsureManagement(ctx context.Context, adminPassword string) (Management, error)
	Authenticate(ctx context.Context, tenant, userName, password string) error
	Login(ctx context.Context, tenant, userName, password string) (User, error)
}

// Dumps move a whole store out of an engine and into another, of the
// same kind or the other: the records of the dump format (dump.go,
// docs/store-format.md), which ExportDump, ImportDump and CopyStore
// read and write. Records keep their ids, secrets (password hashes, PSK
// keys) included.
type Dumps interface {
	// Export calls fn with every record of the store, in the order of
	// DumpKinds, reading a few at a time (never the whole store into
	// memory); an error of fn stops it and is returned.
	Export(ctx context.Context, fn func(Record) error) error
	// DumpKinds are the kinds the engine exports and imports; Export
	// writes no other, ImportBatch refuses any other.
	DumpKinds() []string
	// ImportReady says whether the store may receive an import: nil for
	// a store without tenants other than the management tenant, and
	// without data other than that tenant's users (what a first start
	// creates); ErrNotEmpty, naming what it holds, otherwise.
	ImportReady(ctx context.Context) error
	// ImportBatch writes records that follow each other in a dump, with
	// their ids, all or none of them where the engine can (see each
	// engine's), and raises the id counter to at least every imported
	// id. A record that cannot be imported is a *BatchError naming it.
	// The management tenant and its users replace those of the store;
	// any other record that exists already is ErrConflict.
	ImportBatch(ctx context.Context, records []Record) error
}

// DecodeBacklog keeps the raw values waiting for a decoder (or a custom
// action plugin) until they are decoded, so that a value survives a
// decoder that is down, slow or restarting, and a restart of the agent
// (see decodebacklog.go).
//
// Values wait in groups, one per device and decoder, in the order they
// were appended. A taker leases whole groups: while a group is leased no
// other taker gets any of its values, and the taker ends the lease with
// SettleDecodes, which removes the values it is done with and keeps
// those to try again later at the head of their groups. A lease that is
// not ended runs out (a taker that died); the embedded engine, whose one
// process is the only taker, ends its leases when it opens. Every method
// but AppendDecodes works across tenants: a decoder serves them all, and
// each value names its tenant.
type DecodeBacklog interface {
	// AppendDecodes appends the tenant's values at the tail of their
	// groups, due at once, and returns once they are durable. At most
	// max values of the tenant wait at a time: the values beyond that,
	// the last ones of vals, are not stored, and refused counts them.
	// Each value's Seq is the engine's; a zero Queued is now.
	AppendDecodes(ctx context.Context, tenant string, vals []DecodeValue, max int) (refused int, err error)
	// TakeDecodes leases, until now+lease, the groups of decoder that
	// are due at now and not leased, those due longest first, and
	// returns their first values, a group's in order, at most limit in
	// all. A group that gave none is not leased.
	TakeDecodes(ctx context.Context, decoder string, now time.Time, lease time.Duration, limit int) ([]DecodeValue, error)
	// TakeExpiredDecodes leases, as TakeDecodes does, the groups of
	// decoder not leased that hold values queued before before, due or
	// waiting for a retry, and returns those values, at most limit, for
	// the caller to drop.
	TakeExpiredDecodes(ctx context.Context, decoder string, before, now time.Time, lease time.Duration, limit int) ([]DecodeValue, error)
	// SettleDecodes ends the lease of the groups of taken values in one
	// change: it removes the done values (decoded, or dropped), keeps
	// the retry values at the head of their groups and counts an attempt
	// of each. A group with a value to retry is due again at next;
	// another with values left at now, behind the groups due before it,
	// or later if it waited for a retry.
	SettleDecodes(ctx context.Context, done, retry []DecodeValue, now, next time.Time) error
	// ResumeDecodes makes the groups of decoder (every decoder's for "")
	// that wait for a retry after now due at now; leased ones are left.
	ResumeDecodes(ctx context.Context, decoder string, now time.Time) error
	// DecodeBacklogStats counts the values waiting for each decoder,
	// leased ones included, with the oldest one's Queued, by decoder.
	DecodeBacklogStats(ctx context.Context) ([]DecodeBacklogStat, error)
}

// References are the child references between managed objects of a
// tenant (references.go): a group's child assets, a firmware's versions
// as child additions. A reference joins two objects of one tenant and
// goes when either object is deleted.
type References interface {
	// AddChildReference makes child a child of parent by a reference of
	// kind; adding one that is there already changes nothing. A parent
	// or child that is not an object of the tenant is ErrNotFound, an
	// unknown kind or an object its own child ErrInvalid.
	AddChildReference(ctx context.Context, tenant, kind, parent, child string) error
	// RemoveChildReference removes it; ErrNotFound if there is none.
	RemoveChildReference(ctx context.Context, tenant, kind, parent, child string) error
	// ListChildren lists the children of parent by kind, as objects, in
	// the order they were added; total is -1 unless p.WithTotal.
	ListChildren(ctx context.Context, tenant, kind, parent string, p Page) ([]ManagedObject, int64, error)
	// ParentsOf lists the ids of the objects that child is a child of by
	// kind, in the order the references were added, at most limit.
	ParentsOf(ctx context.Context, tenant, kind, child string, limit int) ([]string, error)
	// AllReferences returns, in one read, every reference of id: per
	// kind its children as ListChildren lists them and its parents as
	// ParentsOf does, at most limit of each (all if limit <= 0). It is
	// what an object's rendering shows, on every change notified.
	AllReferences(ctx context.Context, tenant, id string, limit int) (ObjectReferences, error)
}

// BulkOperations are the bulk operations (bulkops.go) and the creation
// of their operations, one device at a time, by any number of
// schedulers (agents on one MongoDB) without a device getting two.
type BulkOperations interface {
	// CreateBulkOperation stores b with a fresh id, its Targets (at
	// least one), Position 0 and NextAt its StartDate, ACTIVE.
	CreateBulkOperation(ctx context.Context, tenant string, b BulkOperation) (BulkOperation, error)
	GetBulkOperation(ctx context.Context, tenant, id string) (BulkOperation, error)
	// ListBulkOperations lists the tenant's bulk operations by id; total
	// is -1 unless p.WithTotal.
	ListBulkOperations(ctx context.Context, tenant string, p Page) ([]BulkOperation, int64, error)
	// SetBulkStatus moves a bulk operation to CANCELED or DELETED (the
	// others are the store's): canceling a CANCELED or DELETED one, or
	// deleting a DELETED one, is ErrInvalid, so that of two cancels one
	// wins. It answers it as changed.
	SetBulkStatus(ctx context.Context, tenant, id, status string) (BulkOperation, error)
	// DueBulkOperations lists, across tenants, the bulk operations that
	// are ACTIVE or IN_PROGRESS with devices left and whose next
	// operation is due at now, earliest first, at most limit.
	DueBulkOperations(ctx context.Context, now time.Time, limit int) ([]TenantBulkOperation, error)
	// CreateBulkStep claims the device at b.Position, as the caller read
	// it, and creates its operation (b.StepOperation): the position
	// moves to b.Position+1, the status to IN_PROGRESS and NextAt to
	// next. Only one of concurrent claims of one position succeeds; the
	// others, and a claim of a bulk operation that moved on or stopped
	// meanwhile, are ErrConflict and create nothing. A claim whose
	// creator died before the operation was stored is finished by the
	// next claim, so that no device is skipped or served twice.
	CreateBulkStep(ctx context.Context, tenant string, b BulkOperation, next time.Time) (Operation, error)
	// BulkOperationIDs lists the ids of the operations of bulk operation
	// id in status, in creation order, at most limit.
	BulkOperationIDs(ctx context.Context, tenant, id, status string, limit int) ([]string, error)
}

// DTLSSessions keep established DTLS sessions (dtlssessions.go), one per
// PSK identity, so that the agent resumes a session without a handshake:
// after parking it, after a restart, on another replica. Lookups work
// across tenants, as a datagram names none; changes name the session
// they mean, so that one meant for a session replaced since does nothing.
type DTLSSessions interface {
	// PutDTLSSession stores s as the session of s.Identity, replacing
	// the identity's session if it has one.
	PutDTLSSession(ctx context.Context, s DTLSSession) error
	// DTLSSessionByIdentity, DTLSSessionByCID and DTLSSessionByAddr
	// return the session of a PSK identity, of the Connection ID the
	// agent gave (LocalCID), of a device address (the one last active
	// there); ErrNotFound when there is none.
	DTLSSessionByIdentity(ctx context.Context, identity string) (DTLSSession, error)
	DTLSSessionByCID(ctx context.Context, cid []byte) (DTLSSession, error)
	DTLSSessionByAddr(ctx context.Context, addr string) (DTLSSession, error)
	// ReserveDTLSSequence moves the SeqBound of session id of identity
	// from from to to, and its PeerSeq up to peerSeq, atomically: of
	// concurrent reservations from one bound one succeeds, the others
	// are ErrConflict, as is one whose bound is no longer from. A
	// session replaced or removed is ErrNotFound.
	ReserveDTLSSequence(ctx context.Context, identity, id string, from, to, peerSeq uint64) error
	// TouchDTLSSession records the address and last activity of session
	// id of identity; ErrNotFound when it was replaced or removed.
	TouchDTLSSession(ctx context.Context, identity, id, addr string, at time.Time) error
	// DeleteDTLSSession removes the session of identity if the tenant's
	// device holds it, and says whether it did.
	DeleteDTLSSession(ctx context.Context, tenant, identity string) (bool, error)
}

// Engine is a whole store: every concern, and Close.
type Engine interface {
	DTLSSessions
	References
	BulkOperations
	Devices
	Identities
	Registrations
	Operations
	Telemetry
	States
	Binaries
	ProtocolRecords
	Tenants
	Dumps
	Retention
	DecodeBacklog
	FirmwareGrants
	Replicas
	Close(ctx context.Context) error
}

// DataKind names what a retention rule applies to, as Cumulocity's
// retention rules name it.
type DataKind string

// The kinds of data that Retention expires.
const (
	DataMeasurement DataKind = "MEASUREMENT"
	DataEvent       DataKind = "EVENT"
	DataAlarm       DataKind = "ALARM"
	DataOperation   DataKind = "OPERATION"
)

// Retention removes what is older than its time, so that a fleet's
// history does not grow without bound.
type Retention interface {
	// Expire deletes, in every tenant, at most limit records of kind
	// that are older than before: measurements and events by their
	// time, alarms once CLEARED by their time, operations once
	// SUCCESSFUL or FAILED by their last update (an alarm still open and
	// an operation still to do are never expired). It returns how many
	// records it deleted; 0 says that none is left. The MongoDB engine
	// keeps measurements in buckets of an hour of one source and type:
	// it deletes a bucket whole once its last measurement is older than
	// before, and limit counts buckets.
	Expire(ctx context.Context, kind DataKind, before time.Time, limit int) (int, error)
}

// Pooled is an engine whose callers share a bounded set of connections:
// under a stream of device writes they keep the pool busy, and a user's
// request must not wait behind them. Pool opens the same store over
// connections of its own (at most size); close it before the engine. An
// engine whose readers never wait for its writers does not need it.
type Pooled interface {
	Pool(size int) (Engine, error)
}
