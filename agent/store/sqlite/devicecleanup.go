package sqlite

// deviceCleanup removes, with a device, what the other concerns keep of
// it, each function given the change that removes the device, its
// tenant and its id, so that the removal is whole or not at all. The
// MongoDB engine removes a device's last known values and its operation
// queue with it, and keeps its measurements, events, alarms and
// operations as history; both fail the operations still PENDING or
// EXECUTING (failOperationsOf), which here are the queue, so that
// nothing waits for a device that is gone.
//
// A concern that keeps more of a device adds its function here, served
// by an index that leads with (tenant, device).
var deviceCleanup = []func(tx *Tx, tenant, device string) error{
	deleteValuesOf,
	failOperationsOf,
	deleteReferencesOf,
}
