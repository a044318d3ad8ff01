// Package store is the agent's storage contract: the interfaces an engine
// implements, one per concern, and Engine, which gathers them
// (contract.go); the records they keep (tenants and users, managed objects
// and their external IDs, device protocols, events, alarms, measurements,
// last known resource values and operations); and what the engines share:
// query parsing, the dump reader and writer, the protocols layer over
// ProtocolRecords, login checks and the like. The engines are in
// store/mongo (MongoDB) and store/sqlite (the embedded engine).
//
// Every method that takes a tenant returns and changes only that tenant's
// data; another tenant's ID behaves exactly like an unknown one
// (ErrNotFound).
package store
