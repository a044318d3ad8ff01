package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The dump format (docs/store-format.md): a whole store as JSON Lines, a
// header line, one record per line and a trailer line with the count of
// each kind, so that a store moves between engines (the embedded one and
// MongoDB) and is backed up by either. Records are engine-neutral: ids
// are strings, times RFC 3339 in UTC with milliseconds, bytes base64,
// fragments JSON. This file holds the records and their encoding;
// dumpio.go reads and writes whole dumps; each engine exports and imports
// records (Dumps).

// DumpFormat and DumpVersion are the header's "format" and "version". A
// reader refuses another format and a version newer than its own; any
// change of a record's members is a new version. Version 2 added child
// references and bulk operations; a dump of version 1, which has none,
// reads as it did.
const (
	DumpFormat  = "lwm2m-agent-store"
	DumpVersion = 2
)

// Record kinds, the "kind" member of each line.
const (
	KindTenant         = "tenant"
	KindUser           = "user"
	KindCounter        = "counter"
	KindManagedObject  = "managedObject"
	KindChildReference = "childReference"
	KindExternalID     = "externalId"
	KindEndpoint       = "endpoint"
	KindPSKIdentity    = "pskIdentity"
	KindRegistration   = "registration"
	KindProtocol       = "protocol"
	KindPostOperations = "postOperations"
	KindOperation      = "operation"
	KindBulkOperation  = "bulkOperation"
	KindMeasurement    = "measurement"
	KindEvent          = "event"
	KindAlarm          = "alarm"
	KindValues         = "values"
	KindBinary         = "binary"
	KindBinaryChunk    = "binaryChunk"
)

// DumpKinds are the kinds in the order a dump holds them: every record
// comes after what its import needs (tenants before their users, the id
// counter before anything with an id, devices before what names them).
// A binary's chunks follow it, so the two kinds share one place: binary,
// its chunks, the next binary.
var DumpKinds = []string{
	KindTenant, KindUser, KindCounter,
	KindManagedObject, KindChildReference, KindExternalID, KindEndpoint, KindPSKIdentity, KindRegistration,
	KindProtocol, KindPostOperations, KindOperation, KindBulkOperation,
	KindMeasurement, KindEvent, KindAlarm, KindValues,
	KindBinary, KindBinaryChunk,
}

// kindRank is a kind's place in DumpKinds; binaryChunk shares binary's.
func kindRank(kind string) (int, bool) {
	if kind == KindBinaryChunk {
		kind = KindBinary
	}
	for i, k := range DumpKinds {
		if k == kind {
			return i, true
		}
	}
	return 0, false
}

// Record is one line of a dump: a pointer to one of the *Record types
// below, whose Kind names it.
type Record interface {
	Kind() string
	// Ref names the record in errors and progress, without its secrets:
	// "acme/17" for a tenant's object, never a PSK identity or a key.
	Ref() string
}

// TenantRecord is a tenant.
type TenantRecord struct {
	ID           string   `json:"id"`
	Domain       string   `json:"domain"`
	CreationTime DumpTime `json:"creationTime"`
}

// UserRecord is a user with its password's bcrypt hash: a restored store
// lets its users log in with their passwords.
type UserRecord struct {
	Tenant       string   `json:"tenant"`
	UserName     string   `json:"userName"`
	PasswordHash []byte   `json:"passwordHash"`
	Roles        []string `json:"roles"`
}

// CounterRecord is a counter of the store: "ids" is the sequence every
// new id comes from, and an import raises the target's to at least it.
type CounterRecord struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// CounterIDs is the counter of ids.
const CounterIDs = "ids"

// ManagedObjectRecord is a managed object (a device or any other).
type ManagedObjectRecord struct {
	Tenant       string   `json:"tenant"`
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	CreationTime DumpTime `json:"creationTime"`
	LastUpdated  DumpTime `json:"lastUpdated"`
	Fragments    DumpDoc  `json:"fragments"`
}

// ExternalIDRecord is an external ID of a managed object.
type ExternalIDRecord struct {
	Tenant          string `json:"tenant"`
	Type            string `json:"type"`
	ExternalID      string `json:"externalId"`
	ManagedObjectID string `json:"managedObjectId"`
}

// EndpointRecord binds an LwM2M endpoint name to a device.
type EndpointRecord struct {
	Endpoint string `json:"endpoint"`
	Tenant   string `json:"tenant"`
	DeviceID string `json:"deviceId"`
}

// PSKIdentityRecord binds a PSK identity of Type PSKServer or
// PSKBootstrap to a device.
type PSKIdentityRecord struct {
	Type     string `json:"type"`
	Identity string `json:"identity"`
	Tenant   string `json:"tenant"`
	DeviceID string `json:"deviceId"`
}

// RegistrationRecord is a device's registration record
// (DeviceRegistration), its keys included: a restored device
// authenticates with them.
type RegistrationRecord struct {
	Tenant   string `json:"tenant"`
	DeviceID string `json:"deviceId"`
	// Params is absent for a record without parameters (one that holds
	// only a serialization), which is not one with no parameters ({}).
	Params          DumpDoc           `json:"params,omitzero"`
	PSKKey          []byte            `json:"pskKey,omitempty"`
	BootstrapPSKKey []byte            `json:"bootstrapPskKey,omitempty"`
	CredentialsHash []byte            `json:"credentialsHash,omitempty"`
	Serialization   string            `json:"serialization,omitempty"`
	Updated         DumpTime          `json:"updated,omitzero"`
	Incomplete      bool              `json:"incomplete,omitempty"`
	Deleting        bool              `json:"deleting,omitempty"`
	Release         map[string]string `json:"release,omitempty"`
}

// Registration returns the record as the contract's DeviceRegistration.
func (r *RegistrationRecord) Registration() DeviceRegistration {
	return DeviceRegistration{
		Params: r.Params, PSKKey: r.PSKKey, BootstrapPSKKey: r.BootstrapPSKKey, CredentialsHash: r.CredentialsHash,
		Serialization: r.Serialization, Updated: r.Updated.Time(), Incomplete: r.Incomplete || r.Deleting,
		Deleting: r.Deleting, Release: r.Release,
	}
}

// RegistrationRecordOf is the record of the tenant's device's r.
func RegistrationRecordOf(tenant, deviceID string, r DeviceRegistration) *RegistrationRecord {
	return &RegistrationRecord{
		Tenant: tenant, DeviceID: deviceID, Params: r.Params, PSKKey: r.PSKKey, BootstrapPSKKey: r.BootstrapPSKKey,
		CredentialsHash: r.CredentialsHash, Serialization: r.Serialization, Updated: DumpTime(r.Updated),
		Incomplete: r.Incomplete, Deleting: r.Deleting, Release: r.Release,
	}
}

// ProtocolDumpRecord is a tenant's device protocol as the contract's
// ProtocolRecords keep it: the object's definition, and the
// functionalities and validation rules of its resources by resource ID,
// each a JSON object, kept as it is.
type ProtocolDumpRecord struct {
	Tenant          string          `json:"tenant"`
	ObjectID        uint16          `json:"objectId"`
	Source          string          `json:"source"`
	Updated         DumpTime        `json:"updated"`
	Definition      json.RawMessage `json:"definition"`
	Functionalities json.RawMessage `json:"functionalities"`
	Validation      json.RawMessage `json:"validation"`
}

// ProtocolDumpOf is the dump record of r.
func ProtocolDumpOf(r ProtocolRecord) *ProtocolDumpRecord {
	return &ProtocolDumpRecord{Tenant: r.Tenant, ObjectID: r.ObjectID, Source: r.Source, Updated: DumpTime(r.Updated),
		Definition: r.Definition, Functionalities: r.Functionalities, Validation: r.Validation}
}

// Record returns the dump record as the contract's ProtocolRecord,
// checked as an engine checks what it stores.
func (r *ProtocolDumpRecord) Record() (ProtocolRecord, error) {
	return ProtocolRecord{Tenant: r.Tenant, ObjectID: r.ObjectID, Source: r.Source, Updated: r.Updated.Time(),
		Definition: r.Definition, Functionalities: r.Functionalities, Validation: r.Validation}.Check()
}

// PostOperationsRecord is a tenant's post-registration commands.
type PostOperationsRecord struct {
	Tenant   string   `json:"tenant"`
	Commands []string `json:"commands"`
	Updated  DumpTime `json:"updated,omitzero"`
}

// OperationRecord is an operation in whatever status it is; an import
// queues the PENDING ones again.
type OperationRecord struct {
	Tenant        string         `json:"tenant"`
	ID            string         `json:"id"`
	DeviceID      string         `json:"deviceId"`
	Status        string         `json:"status"`
	CreationTime  DumpTime       `json:"creationTime"`
	LastUpdated   DumpTime       `json:"lastUpdated"`
	Command       *CommandRecord `json:"command,omitempty"`
	FailureReason string         `json:"failureReason,omitempty"`
	Attempts      int            `json:"attempts"`
	Fragments     DumpDoc        `json:"fragments"`
}

// CommandRecord is an operation's c8y_Command.
type CommandRecord struct {
	Text   string `json:"text"`
	Result string `json:"result,omitempty"`
}

// OperationRecordOf is the record of the tenant's operation op.
func OperationRecordOf(tenant string, op Operation) *OperationRecord {
	r := &OperationRecord{
		Tenant: tenant, ID: op.ID, DeviceID: op.DeviceID, Status: op.Status,
		CreationTime: DumpTime(op.CreationTime), LastUpdated: DumpTime(op.LastUpdated),
		FailureReason: op.FailureReason, Attempts: op.Attempts, Fragments: op.Fragments,
	}
	if op.HasCommand {
		r.Command = &CommandRecord{Text: op.Text, Result: op.Result}
	}
	return r
}

// Operation returns the record as the contract's Operation.
func (r *OperationRecord) Operation() Operation {
	op := Operation{
		ID: r.ID, DeviceID: r.DeviceID, Status: r.Status, CreationTime: r.CreationTime.Time(),
		LastUpdated: r.LastUpdated.Time(), FailureReason: r.FailureReason, Attempts: r.Attempts, Fragments: r.Fragments,
	}
	if r.Command != nil {
		op.HasCommand, op.Text, op.Result = true, r.Command.Text, r.Command.Result
	}
	return op
}

// ChildReferenceRecord is a child reference between two managed objects
// of a tenant (References). A dump holds the references in the order
// they were added, which an import keeps: a parent's children and a
// child's parents are listed in that order.
type ChildReferenceRecord struct {
	Tenant string `json:"tenant"`
	// Type is the reference's kind: childAssets, childAdditions or
	// childDevices ("kind" names the record's).
	Type   string `json:"type"`
	Parent string `json:"parent"`
	Child  string `json:"child"`
}

// Check refuses a reference no engine would store.
func (r *ChildReferenceRecord) Check() error {
	if !slices.Contains(ReferenceKinds, r.Type) {
		return fmt.Errorf("%w: reference type %q", ErrInvalid, r.Type)
	}
	if r.Parent == "" || r.Child == "" || r.Parent == r.Child {
		return fmt.Errorf("%w: a reference needs a parent and another child", ErrInvalid)
	}
	return nil
}

// BulkOperationRecord is a bulk operation with its devices and how far
// it got: Position devices have their operation, so that an imported
// bulk operation that was running goes on with the next device and
// creates no operation twice.
type BulkOperationRecord struct {
	Tenant       string   `json:"tenant"`
	ID           string   `json:"id"`
	GroupID      string   `json:"groupId"`
	StartDate    DumpTime `json:"startDate"`
	CreationRamp int64    `json:"creationRamp"` // milliseconds
	Prototype    DumpDoc  `json:"prototype"`
	Status       string   `json:"status"`
	// Targets are the devices in the order their operations are created.
	Targets      []string `json:"targets"`
	Position     int      `json:"position"`
	NextAt       DumpTime `json:"nextAt"`
	CreationTime DumpTime `json:"creationTime"`
	LastUpdated  DumpTime `json:"lastUpdated"`
	Fragments    DumpDoc  `json:"fragments"`
	// Claim is the step of an engine without transactions whose claimer
	// had taken the device at Position-1 but not stored its operation
	// yet when the dump was made (or died): the import stores that
	// operation under the claim's id unless the dump holds it, so that
	// the device is neither skipped nor served twice.
	Claim *BulkClaimRecord `json:"claim,omitempty"`
}

// BulkClaimRecord is a claim of a bulk operation's step.
type BulkClaimRecord struct {
	OperationID string   `json:"operationId"`
	DeviceID    string   `json:"deviceId"`
	At          DumpTime `json:"at"`
}

// BulkOperationRecordOf is the record of the tenant's bulk operation b
// with its devices (b.Targets is not read: the contract never returns
// them).
func BulkOperationRecordOf(tenant string, b BulkOperation, targets []string) *BulkOperationRecord {
	return &BulkOperationRecord{
		Tenant: tenant, ID: b.ID, GroupID: b.GroupID, StartDate: DumpTime(b.StartDate),
		CreationRamp: b.CreationRamp.Milliseconds(), Prototype: b.Prototype, Status: b.Status, Targets: targets,
		Position: b.Position, NextAt: DumpTime(b.NextAt), CreationTime: DumpTime(b.CreationTime),
		LastUpdated: DumpTime(b.LastUpdated), Fragments: b.Fragments,
	}
}

// BulkOperation returns the record as the contract's BulkOperation,
// with its Targets and Total.
func (r *BulkOperationRecord) BulkOperation() BulkOperation {
	return BulkOperation{
		ID: r.ID, GroupID: r.GroupID, StartDate: r.StartDate.Time(), CreationRamp: time.Duration(r.CreationRamp) * time.Millisecond,
		Prototype: r.Prototype, Status: r.Status, Targets: r.Targets, Total: len(r.Targets), Position: r.Position,
		NextAt: r.NextAt.Time(), CreationTime: r.CreationTime.Time(), LastUpdated: r.LastUpdated.Time(), Fragments: r.Fragments,
	}
}

// Check refuses a bulk operation no engine would store, or whose claim
// is not its last step's.
func (r *BulkOperationRecord) Check() error {
	switch r.Status {
	case BulkActive, BulkInProgress, BulkCompleted, BulkCanceled, BulkDeleted:
	default:
		return fmt.Errorf("%w: bulk operation status %q", ErrInvalid, r.Status)
	}
	if len(r.Targets) == 0 || r.Position < 0 || r.Position > len(r.Targets) || r.CreationRamp < 0 {
		return fmt.Errorf("%w: a bulk operation needs devices, a position among them (%d of %d) and a ramp not below 0",
			ErrInvalid, r.Position, len(r.Targets))
	}
	if slices.Contains(r.Targets, "") {
		return fmt.Errorf("%w: a bulk operation's device without an id", ErrInvalid)
	}
	if c := r.Claim; c != nil {
		if r.Position == 0 || c.DeviceID != r.Targets[r.Position-1] {
			return fmt.Errorf("%w: the claim is not of the device before the position", ErrInvalid)
		}
		if n, err := strconv.ParseInt(c.OperationID, 10, 64); err != nil || n < 0 || strconv.FormatInt(n, 10) != c.OperationID {
			return fmt.Errorf("%w: the claim's operation id %q is not a number of the id sequence", ErrInvalid, c.OperationID)
		}
	}
	return nil
}

// ClaimedOperation is the operation r's claim was to create: PENDING,
// created when the device was claimed. It is nil without a claim.
func (r *BulkOperationRecord) ClaimedOperation() *OperationRecord {
	if r.Claim == nil {
		return nil
	}
	op := r.BulkOperation().StepOperation(r.Claim.DeviceID)
	op.ID, op.Status = r.Claim.OperationID, OpPending
	op.CreationTime, op.LastUpdated = r.Claim.At.Time(), r.Claim.At.Time()
	return OperationRecordOf(r.Tenant, op)
}

// MeasurementRecord is one measurement.
type MeasurementRecord struct {
	Tenant    string   `json:"tenant"`
	ID        string   `json:"id"`
	Source    string   `json:"source"`
	Type      string   `json:"type"`
	Time      DumpTime `json:"time"`
	Fragments DumpDoc  `json:"fragments"`
}

// EventRecord is an event.
type EventRecord struct {
	Tenant       string   `json:"tenant"`
	ID           string   `json:"id"`
	Source       string   `json:"source"`
	Type         string   `json:"type"`
	Text         string   `json:"text"`
	Time         DumpTime `json:"time"`
	CreationTime DumpTime `json:"creationTime"`
	Fragments    DumpDoc  `json:"fragments"`
}

// AlarmRecord is an alarm; an import opens again the ones not CLEARED,
// so that a raise counts on them.
type AlarmRecord struct {
	Tenant              string   `json:"tenant"`
	ID                  string   `json:"id"`
	Source              string   `json:"source"`
	Type                string   `json:"type"`
	Text                string   `json:"text"`
	Severity            string   `json:"severity"`
	Status              string   `json:"status"`
	Count               int64    `json:"count"`
	Time                DumpTime `json:"time"`
	FirstOccurrenceTime DumpTime `json:"firstOccurrenceTime"`
	CreationTime        DumpTime `json:"creationTime"`
	Fragments           DumpDoc  `json:"fragments"`
}

// ValuesRecord is the last known values of a device's resources.
type ValuesRecord struct {
	Tenant   string        `json:"tenant"`
	DeviceID string        `json:"deviceId"`
	Values   []ValueRecord `json:"values"`
}

// ValueRecord is one ResourceValue.
type ValueRecord struct {
	Path  string    `json:"path"`
	Value DumpValue `json:"value"`
	Type  string    `json:"type"`
	Time  DumpTime  `json:"time"`
}

// BinaryRecord is a stored file's metadata; Chunks binaryChunk records
// follow it, numbered from 0, which hold its bytes.
type BinaryRecord struct {
	Tenant       string   `json:"tenant"`
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	ContentType  string   `json:"contentType"`
	Length       int64    `json:"length"`
	Owner        string   `json:"owner,omitempty"`
	CreationTime DumpTime `json:"creationTime"`
	LastUpdated  DumpTime `json:"lastUpdated"`
	Fragments    DumpDoc  `json:"fragments"`
	Chunks       int64    `json:"chunks"`
}

// BinaryChunkRecord is the N-th piece of a binary's bytes.
type BinaryChunkRecord struct {
	Tenant   string `json:"tenant"`
	BinaryID string `json:"binaryId"`
	N        int64  `json:"n"`
	Data     []byte `json:"data"`
}

func (*TenantRecord) Kind() string         { return KindTenant }
func (*UserRecord) Kind() string           { return KindUser }
func (*CounterRecord) Kind() string        { return KindCounter }
func (*ManagedObjectRecord) Kind() string  { return KindManagedObject }
func (*ExternalIDRecord) Kind() string     { return KindExternalID }
func (*EndpointRecord) Kind() string       { return KindEndpoint }
func (*PSKIdentityRecord) Kind() string    { return KindPSKIdentity }
func (*RegistrationRecord) Kind() string   { return KindRegistration }
func (*ProtocolDumpRecord) Kind() string   { return KindProtocol }
func (*PostOperationsRecord) Kind() string { return KindPostOperations }
func (*OperationRecord) Kind() string      { return KindOperation }
func (*ChildReferenceRecord) Kind() string { return KindChildReference }
func (*BulkOperationRecord) Kind() string  { return KindBulkOperation }
func (*MeasurementRecord) Kind() string    { return KindMeasurement }
func (*EventRecord) Kind() string          { return KindEvent }
func (*AlarmRecord) Kind() string          { return KindAlarm }
func (*ValuesRecord) Kind() string         { return KindValues }
func (*BinaryRecord) Kind() string         { return KindBinary }
func (*BinaryChunkRecord) Kind() string    { return KindBinaryChunk }

func (r *TenantRecord) Ref() string        { return r.ID }
func (r *UserRecord) Ref() string          { return r.Tenant + "/" + r.UserName }
func (r *CounterRecord) Ref() string       { return r.Name }
func (r *ManagedObjectRecord) Ref() string { return r.Tenant + "/" + r.ID }
func (r *ExternalIDRecord) Ref() string {
	return r.Tenant + "/" + r.ManagedObjectID + " " + r.Type + " " + r.ExternalID
}
func (r *EndpointRecord) Ref() string { return r.Endpoint }

// Ref names the device, not the identity: the identity is the name of
// the device's secret and stays out of logs and errors.
func (r *PSKIdentityRecord) Ref() string {
	return r.Type + " identity of " + r.Tenant + "/" + r.DeviceID
}
func (r *RegistrationRecord) Ref() string   { return r.Tenant + "/" + r.DeviceID }
func (r *ProtocolDumpRecord) Ref() string   { return r.Tenant + "/" + strconv.Itoa(int(r.ObjectID)) }
func (r *PostOperationsRecord) Ref() string { return r.Tenant }
func (r *OperationRecord) Ref() string      { return r.Tenant + "/" + r.ID }
func (r *ChildReferenceRecord) Ref() string {
	return r.Tenant + "/" + r.Parent + " " + r.Type + " " + r.Child
}
func (r *BulkOperationRecord) Ref() string { return r.Tenant + "/" + r.ID }
func (r *MeasurementRecord) Ref() string   { return r.Tenant + "/" + r.ID }
func (r *EventRecord) Ref() string         { return r.Tenant + "/" + r.ID }
func (r *AlarmRecord) Ref() string         { return r.Tenant + "/" + r.ID }
func (r *ValuesRecord) Ref() string        { return r.Tenant + "/" + r.DeviceID }
func (r *BinaryRecord) Ref() string        { return r.Tenant + "/" + r.ID }
func (r *BinaryChunkRecord) Ref() string {
	return r.Tenant + "/" + r.BinaryID + " #" + strconv.FormatInt(r.N, 10)
}

// RecordID is the id a record carries from the id sequence: a managed
// object's, an operation's, a measurement's, an event's, an alarm's or a
// binary's or a bulk operation's; "" for the other kinds (a bulk
// operation's claim carries one more, its operation's).
func RecordID(r Record) string {
	switch x := r.(type) {
	case *ManagedObjectRecord:
		return x.ID
	case *OperationRecord:
		return x.ID
	case *MeasurementRecord:
		return x.ID
	case *EventRecord:
		return x.ID
	case *AlarmRecord:
		return x.ID
	case *BinaryRecord:
		return x.ID
	case *BulkOperationRecord:
		return x.ID
	}
	return ""
}

// newRecord returns an empty record of kind, to decode a line into.
func newRecord(kind string) (Record, bool) {
	switch kind {
	case KindTenant:
		return &TenantRecord{}, true
	case KindUser:
		return &UserRecord{}, true
	case KindCounter:
		return &CounterRecord{}, true
	case KindManagedObject:
		return &ManagedObjectRecord{}, true
	case KindExternalID:
		return &ExternalIDRecord{}, true
	case KindEndpoint:
		return &EndpointRecord{}, true
	case KindPSKIdentity:
		return &PSKIdentityRecord{}, true
	case KindRegistration:
		return &RegistrationRecord{}, true
	case KindProtocol:
		return &ProtocolDumpRecord{}, true
	case KindPostOperations:
		return &PostOperationsRecord{}, true
	case KindOperation:
		return &OperationRecord{}, true
	case KindChildReference:
		return &ChildReferenceRecord{}, true
	case KindBulkOperation:
		return &BulkOperationRecord{}, true
	case KindMeasurement:
		return &MeasurementRecord{}, true
	case KindEvent:
		return &EventRecord{}, true
	case KindAlarm:
		return &AlarmRecord{}, true
	case KindValues:
		return &ValuesRecord{}, true
	case KindBinary:
		return &BinaryRecord{}, true
	case KindBinaryChunk:
		return &BinaryChunkRecord{}, true
	}
	return nil, false
}

// DumpTime is a time in a dump: RFC 3339 in UTC with milliseconds
// ("2026-03-01T12:00:00.000Z"); the zero time is null.
type DumpTime time.Time

const dumpTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Time returns the time in UTC.
func (t DumpTime) Time() time.Time {
	if time.Time(t).IsZero() {
		return time.Time{}
	}
	return time.Time(t).UTC()
}

// IsZero reports whether t is the zero time (omitted with omitzero).
func (t DumpTime) IsZero() bool { return time.Time(t).IsZero() }

func (t DumpTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	u := time.Time(t).UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v: year outside [0,9999]", u)
	}
	return []byte(`"` + u.Truncate(time.Millisecond).Format(dumpTimeLayout) + `"`), nil
}

func (t *DumpTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = DumpTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q: %w", s, err)
	}
	*t = DumpTime(v.UTC())
	return nil
}

// DumpDoc is a JSON object of a record: fragments, registration
// parameters, functionalities. Its values are JSON-shaped as the
// contract's fragments (maps, slices, strings, numbers, booleans,
// time.Time, nil), written so that they read back as they were: a float
// always with a fraction or an exponent (21.0, so that it is not read
// back as the integer 21), an integer without, and a time as
// {"$date": "2026-03-01T12:00:00.000Z"}.
type DumpDoc map[string]any

func (d DumpDoc) MarshalJSON() ([]byte, error) {
	if d == nil {
		return []byte("null"), nil
	}
	v, err := dumpJSON(map[string]any(d))
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func (d *DumpDoc) UnmarshalJSON(b []byte) error {
	v, err := decodeDumpJSON(b)
	if err != nil {
		return err
	}
	switch m := v.(type) {
	case nil:
		*d = nil
	case map[string]any:
		*d = m
	default:
		return fmt.Errorf("want a JSON object, have %s", b[:min(len(b), 20)])
	}
	return nil
}

// DumpValue is one JSON-shaped value of a record, as a DumpDoc's.
type DumpValue struct{ V any }

func (v DumpValue) MarshalJSON() ([]byte, error) {
	j, err := dumpJSON(v.V)
	if err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

func (v *DumpValue) UnmarshalJSON(b []byte) error {
	x, err := decodeDumpJSON(b)
	if err != nil {
		return err
	}
	v.V = x
	return nil
}

// dumpDate is the one member of the object that stands for a time.
const dumpDate = "$date"

// dumpJSON returns v with its floats as json.Number of the float rule
// and its times as {"$date": ...}, for encoding/json to write.
func dumpJSON(v any) (any, error) {
	switch t := v.(type) {
	case nil, string, bool, int, int32, int64, uint32, uint64, json.Number, []byte:
		return v, nil
	case float64:
		return floatNumber(t, 64)
	case float32:
		return floatNumber(float64(t), 32)
	case time.Time:
		j, err := DumpTime(t).MarshalJSON()
		if err != nil {
			return nil, err
		}
		return map[string]any{dumpDate: json.RawMessage(j)}, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			x, err := dumpJSON(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			x, err := dumpJSON(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	}
	// Typed maps and slices ([]string, map[string]string, ...) as their
	// generic forms, so that the rules reach their elements.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String && !rv.IsNil() {
			m := make(map[string]any, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				m[it.Key().String()] = it.Value().Interface()
			}
			return dumpJSON(m)
		}
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() != reflect.Uint8 && !(rv.Kind() == reflect.Slice && rv.IsNil()) {
			s := make([]any, rv.Len())
			for i := range s {
				s[i] = rv.Index(i).Interface()
			}
			return dumpJSON(s)
		}
	case reflect.Float32, reflect.Float64:
		return floatNumber(rv.Float(), rv.Type().Bits())
	}
	return v, nil
}

// floatNumber writes f as encoding/json does, with ".0" after a whole
// number, so that it is read back as a float.
func floatNumber(f float64, bits int) (json.Number, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("%w: number %v", ErrInvalid, f)
	}
	b, err := json.Marshal(f)
	if bits == 32 {
		b, err = json.Marshal(float32(f))
	}
	if err != nil {
		return "", err
	}
	if !bytes.ContainsAny(b, ".eE") {
		b = append(b, '.', '0')
	}
	return json.Number(b), nil
}

// decodeDumpJSON reads a JSON value written by dumpJSON: integers as
// int64, other numbers as float64, {"$date": ...} as a time.Time.
func decodeDumpJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return fromDumpJSON(v)
}

func fromDumpJSON(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		return JSONNumbers(t), nil
	case map[string]any:
		if s, ok := t[dumpDate].(string); ok && len(t) == 1 {
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", dumpDate, s, err)
			}
			return at.UTC(), nil
		}
		for k, e := range t {
			x, err := fromDumpJSON(e)
			if err != nil {
				return nil, err
			}
			t[k] = x
		}
	case []any:
		for i, e := range t {
			x, err := fromDumpJSON(e)
			if err != nil {
				return nil, err
			}
			t[i] = x
		}
	}
	return v, nil
}

// EncodeRecord is the line of r, without its newline: {"kind":...,
// then r's members}.
func EncodeRecord(r Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Kind(), r.Ref(), err)
	}
	line := make([]byte, 0, len(b)+len(r.Kind())+12)
	line = append(line, `{"kind":"`...)
	line = append(line, r.Kind()...)
	line = append(line, '"')
	if len(b) > 2 {
		line = append(line, ',')
	}
	return append(line, b[1:]...), nil
}

// errUnknownKind is a line of a kind this binary does not know.
var errUnknownKind = errors.New("unknown record kind")

// DecodeRecord reads one line of a dump. A member the record's kind does
// not have is an error: a record is never imported half understood.
func DecodeRecord(line []byte) (Record, error) {
	kind, body, err := splitKind(line)
	if err != nil {
		return nil, err
	}
	r, ok := newRecord(kind)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKind, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("%s record: %w", kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s record: more than one JSON value on the line", kind)
	}
	return r, nil
}

// splitKind separates a line's kind from its other members. The writer
// puts the kind first, where it is cut off without decoding the rest (a
// binary chunk's line is large); elsewhere the line is decoded for it.
func splitKind(line []byte) (kind string, body []byte, err error) {
	const prefix = `{"kind":"`
	if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte(prefix)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && !bytes.ContainsRune(rest[:i], '\\') && i+1 < len(rest) {
			switch rest[i+1] {
			case ',':
				return string(rest[:i]), append([]byte{'{'}, rest[i+2:]...), nil
			case '}':
				return string(rest[:i]), append([]byte{'{'}, rest[i+1:]...), nil
			}
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return "", nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if err := json.Unmarshal(m["kind"], &kind); err != nil || strings.TrimSpace(kind) == "" {
		return "", nil, errors.New(`no "kind" string`)
	}
	delete(m, "kind")
	body, err = json.Marshal(m)
	return kind, body, err
}
