package store

import (
	"fmt"
	"strings"
	"time"
)

// Bulk operation statuses, as Cumulocity's: ACTIVE until its first
// operation is created, IN_PROGRESS while it creates them and they run,
// COMPLETED once every one was created and ended; CANCELED and DELETED
// stop it.
const (
	BulkActive     = "ACTIVE"
	BulkInProgress = "IN_PROGRESS"
	BulkCompleted  = "COMPLETED"
	BulkCanceled   = "CANCELED"
	BulkDeleted    = "DELETED"
)

// BulkOperationIDField is the member of an operation that names the bulk
// operation that created it.
const BulkOperationIDField = "bulkOperationId"

// BulkOperation is an operation prototype to create for every device of
// a group, one every CreationRamp from StartDate.
type BulkOperation struct {
	ID           string
	GroupID      string
	StartDate    time.Time
	CreationRamp time.Duration
	// Prototype is the operation to create for each device: its
	// c8y_Command, c8y_Firmware and other fragments (deviceId, status
	// and the other members an operation is given by the store are
	// dropped).
	Prototype map[string]any
	Status    string
	// Targets are the devices, in the order their operations are
	// created; they are given at creation and stored, never returned
	// (Total counts them).
	Targets []string
	Total   int
	// Position is how many of Targets have their operation; NextAt is
	// when the next is due.
	Position     int
	NextAt       time.Time
	CreationTime time.Time
	LastUpdated  time.Time
	// Progress counts the operations created so far by status; every
	// read fills it.
	Progress BulkProgress
	// Fragments are the other members given at creation (note, ...).
	Fragments map[string]any
}

// TenantBulkOperation is a bulk operation with its tenant, for the
// scheduler, which works across tenants.
type TenantBulkOperation struct {
	Tenant string
	BulkOperation
}

// BulkProgress counts a bulk operation's operations by status.
type BulkProgress struct {
	Pending, Executing, Successful, Failed int64
}

// Created is how many operations there are.
func (p BulkProgress) Created() int64 { return p.Pending + p.Executing + p.Successful + p.Failed }

// Done says whether no operation of it is PENDING or EXECUTING.
func (p BulkProgress) Done() bool { return p.Pending == 0 && p.Executing == 0 }

// Running says whether b may still create operations.
func (b BulkOperation) Running() bool {
	return (b.Status == BulkActive || b.Status == BulkInProgress) && b.Position < b.Total
}

// StatusNow is b's status as a reader should see it: IN_PROGRESS is
// COMPLETED once every operation was created and none is left PENDING
// or EXECUTING.
func (b BulkOperation) StatusNow() string {
	if b.Status == BulkInProgress && b.Position >= b.Total && b.Progress.Done() {
		return BulkCompleted
	}
	return b.Status
}

// BulkFinal says whether status is one a bulk operation does not leave.
func BulkFinal(status string) bool {
	return status == BulkCompleted || status == BulkCanceled || status == BulkDeleted
}

// bulkDropped are the members of a prototype that the store sets on an
// operation, or that name the operation rather than what it does.
var bulkDropped = map[string]bool{
	"id": true, "deviceId": true, "status": true, "creationTime": true, "lastUpdated": true,
	"failureReason": true, "attempts": true, "self": true, "bulkOperationId": true, "deviceName": true,
	"additionalOperationIds": true,
}

// StepOperation is the operation of b for device: the prototype's
// c8y_Command and fragments, and BulkOperationIDField naming b.
func (b BulkOperation) StepOperation(device string) Operation {
	op := Operation{DeviceID: device, Fragments: make(map[string]any, len(b.Prototype)+1)}
	for k, v := range b.Prototype {
		switch {
		case bulkDropped[k]:
		case k == "c8y_Command":
			c, _ := v.(map[string]any)
			text, _ := c["text"].(string)
			op.HasCommand, op.Text = true, strings.TrimSpace(text)
		default:
			op.Fragments[k] = v
		}
	}
	op.Fragments[BulkOperationIDField] = b.ID
	return op
}

// CheckBulkStop refuses a status that SetBulkStatus may not set: the
// others are the store's to set.
func CheckBulkStop(status string) error {
	if status != BulkCanceled && status != BulkDeleted {
		return fmt.Errorf("%w: a bulk operation cannot be set %s", ErrInvalid, status)
	}
	return nil
}
