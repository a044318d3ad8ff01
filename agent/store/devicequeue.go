package store

// DeviceQueue is what a device's queue document says of the operations
// that have not ended.
type DeviceQueue struct {
	PendingCount int         // every PENDING operation
	Pending      []Operation // the oldest of them, up to the limit asked for
	Executing    []Operation // sent, or being sent, not ended; oldest first
}
