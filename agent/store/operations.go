package store

import "time"

// Operation statuses.
const (
	OpPending    = "PENDING"
	OpExecuting  = "EXECUTING"
	OpSuccessful = "SUCCESSFUL"
	OpFailed     = "FAILED"

	// FailureDeviceDeleted is the failure reason of the operations that
	// were still PENDING or EXECUTING when their device was deleted.
	FailureDeviceDeleted = "device deleted"
)

// Operation is a request to a device: a shell command (c8y_Command) or
// another fragment such as c8y_Firmware.
type Operation struct {
	ID           string
	DeviceID     string
	Status       string
	CreationTime time.Time
	LastUpdated  time.Time
	// HasCommand says the operation carries c8y_Command {text, result}.
	HasCommand    bool
	Text          string // c8y_Command.text
	Result        string // c8y_Command.result
	FailureReason string
	Attempts      int
	Fragments     map[string]any // everything else, c8y_Command excluded
}

// TenantOperation is an operation with its tenant, for work across
// tenants (the runner's recovery and watchdog).
type TenantOperation struct {
	Tenant string
	Operation
}

// OperationFilter selects operations; zero fields match all.
type OperationFilter struct {
	DeviceID string
	Status   string
	Page     Page
}
