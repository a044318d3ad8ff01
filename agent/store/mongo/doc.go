// Package mongo is the MongoDB engine of the storage contract (package
// store): tenants and users, managed objects and their external IDs, device
// protocols, events, alarms, measurements, last known resource values and
// operations, all through the MongoDB Go driver.
//
// With no MongoDB URI configured the store starts FerretDB in-process over
// SQLite files in the data directory and talks to it with the same driver,
// so there is one storage code path. FerretDB has neither transactions nor
// change streams, and its SQLite backend pushes down to SQL only a filter
// that is exactly {_id: <string>}; every other filter is evaluated over the
// whole collection. The store is laid out for that: every hot lookup
// (a device by ID or endpoint, a user, an external ID, a device's last
// values or pending operations) is a lookup by a string _id, and the tenant
// check of such a lookup happens after the read (see getOwned). Listing
// queries also carry the tenant in their filter and are backed by compound
// indexes, which MongoDB uses.
//
// Every method that takes a tenant returns and changes only that tenant's
// data; another tenant's ID behaves exactly like an unknown one
// (ErrNotFound).
package mongo
