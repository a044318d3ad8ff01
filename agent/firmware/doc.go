// Package firmware serves firmware packages to the devices that pull
// them: over CoAP and CoAPS on the LwM2M ports (/fw/<token>, block-wise
// by hand from the store, at the block size each device asks for), and
// over HTTP on the API's port. A device fetches a package at a URI made
// for it and its operation (Service.Grant): the URI's secret is random
// and only its hash is stored, so that grants outlive a restart and are
// served by every replica sharing a store; Revoke, or the operation's
// deadline, ends it. Service.Open gives the PUSH sender the same
// packages, read at any offset.
//
// External packages (an http(s) URL) are passed through to a device that
// pulls over HTTP(S); for the others the agent fetches the package once
// into the store (a copy, removed after the last deadline that used it),
// bounded in size and time.
//
// Transfers are bounded in total and to one per device; a transfer whose
// device stops asking for blocks for the stall timeout loses its slot.
// See docs/firmware.md.
package firmware
