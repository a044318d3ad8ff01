// Package lwm2m is the LwM2M 1.0, 1.1 and 1.2 server side over CoAP/UDP:
// the registration interface (Register, Update, De-register, lifetime
// expiry), device management (Read, Write, Execute, Create, Delete,
// Discover, Write-Attributes), information reporting (Observe, notifications,
// cancellation) and the LwM2M 1.1 Send operation.
//
// The Server keeps the live registrations in memory, indexed by endpoint,
// registration ID and peer address. It holds no goroutine per device:
// expiry is one goroutine over a min-heap, observations are a token table,
// and requests to a device look up the device's current CoAP connection
// by address when they are made, so a NAT rebinding reported by an Update
// moves all later traffic to the new address. What happens with a
// registration (storage, sessions, pipelines) is left to the Hooks.
package lwm2m
