// Package mongo is the MongoDB engine of the storage contract (package
// store): tenants and users, managed objects and their external IDs, device
// protocols, events, alarms, measurements, last known resource values and
// operations, all through the MongoDB Go driver.
//
// Every hot lookup (a device by ID or endpoint, a user, an external ID, a
// device's last values or pending operations) is a lookup by a string _id,
// and the tenant check of such a lookup happens after the read (see
// getOwned); listing queries carry the tenant in their filter and are
// backed by compound indexes. The layout also serves servers of MongoDB's
// protocol that index little else: FerretDB 1.x, the engine's test server
// (agent/store/ferrettest), pushes down to SQL only a filter that is
// exactly {_id: <string>} and applies an update by reading the document and
// writing it back, which the engine detects at Open (buildInfo) and meets
// by serializing its updates of one document and sending short bulks.
//
// Every method that takes a tenant returns and changes only that tenant's
// data; another tenant's ID behaves exactly like an unknown one
// (ErrNotFound).
package mongo
