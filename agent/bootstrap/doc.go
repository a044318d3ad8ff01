// Package bootstrap is the LwM2M Bootstrap-Server (Core TS 1.0 to 1.2,
// bootstrap interface, client-initiated bootstrap) over CoAP/UDP and
// CoAP/DTLS with pre-shared keys.
//
// A device asks with Bootstrap-Request (POST /bs?ep=NAME). The Server finds
// the device's bootstrap account through its Hooks, by endpoint name on
// the plain port and by the DTLS PSK identity on the secure port, answers
// 2.04 Changed, and then configures the device, which now acts as the CoAP
// server: Bootstrap-Discover (LwM2M 1.1 and later), Bootstrap-Delete of
// the Security (/0) and Server (/1) objects, Bootstrap-Write of the
// LwM2M server's Security and Server instances (and, when asked, of the
// bootstrap server's own Security instance), and Bootstrap-Finish. Every
// step is recorded through Hooks.Event, which StoreHooks turns into the
// device's c8y_LWM2MDeviceBootstrap* events.
//
// Sessions are bounded (Config.MaxSessions), every request to the device
// has a deadline (Config.RequestTimeout), and each peer's datagrams are
// rate limited before they are parsed further.
package bootstrap
