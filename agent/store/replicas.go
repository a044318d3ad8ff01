package store

import (
	"context"
	"errors"
	"time"
)

// ReplicaField is the member of a device's lwm2m fragment that names the
// replica holding its live registration: the agent that answered its
// last Register or Update, and the one that sends it its operations.
const ReplicaField = "replica"

// PendingOperation is an operation stored PENDING, as the replicas'
// watch for new operations sees it.
type PendingOperation struct {
	Tenant       string
	DeviceID     string
	ID           string
	CreationTime time.Time
	// Replica names the replica holding the device's live registration
	// (ReplicaField), "" when the device has none or it names none.
	Replica string
}

// Replicas are what agents sharing one store (replicas, on MongoDB)
// need to share the work without doing any of it twice: the operations
// created since a time, with the replica that is to send each; the live
// registration of a registration ID, for the replica a device moved to;
// and leases, for the work one replica does for all.
type Replicas interface {
	// PendingSince lists, across tenants, at most limit operations still
	// PENDING that were created at or after since, in creation order,
	// each with the replica holding its device's registration. It reads
	// an index of the PENDING operations by creation time.
	PendingSince(ctx context.Context, since time.Time, limit int) ([]PendingOperation, error)
	// RegistrationByID returns, across tenants, the live registration
	// whose registration ID is id; ErrNotFound when no device holds it.
	RegistrationByID(ctx context.Context, id string) (LiveRegistration, error)
	// AcquireLease takes the lease name for holder until now+ttl when it
	// is free, expired at now, or holder's already (a renewal), and says
	// whether holder has it. Of concurrent callers for a free lease one
	// gets it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (acquired bool, err error)
	// ReleaseLease gives up holder's lease name; another's is left.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// PendingWatcher is an engine that tells of operations as they are
// stored (MongoDB's change streams), so that a replica need not poll.
type PendingWatcher interface {
	// WatchPending calls fn for each operation stored PENDING from now on,
	// until ctx ends (nil) or the stream fails. A deployment without
	// change streams is ErrUnsupported at once.
	WatchPending(ctx context.Context, fn func(PendingOperation)) error
}

// ErrUnsupported says that the deployment beneath an engine lacks a
// feature (change streams on a standalone server or FerretDB).
var ErrUnsupported = errors.New("not supported by the deployment")
