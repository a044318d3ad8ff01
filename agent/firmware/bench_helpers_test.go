package firmware

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// startBench is start for a benchmark: the plain port only, without the
// per-peer rate limit (every device is on loopback).
func startBench(b *testing.B, size int) *env {
	st := storetest.OpenEmbedded(b)
	e := &env{st: st}
	var err error
	e.svc, err = New(Config{Store: st})
	check(b, err)
	e.srv, err = lwm2m.NewServer(lwm2m.Config{Addr: "127.0.0.1:0", Packages: e.svc, PeerRate: -1, MaxPendingPeers: 4096}, noHooks{})
	check(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = e.srv.Serve(ctx); done <- struct{}{} }()
	go func() { e.svc.Run(ctx); done <- struct{}{} }()
	b.Cleanup(func() { cancel(); <-done; <-done })
	<-e.srv.Serving()
	e.svc.cfg.CoAPBase = "coap://" + e.srv.Addr().String()
	e.data = randomBytes(size, 5)
	e.bin, err = st.CreateBinary(context.Background(), "acme", store.Binary{Name: "fw.bin"}, bytes.NewReader(e.data), 1<<30)
	check(b, err)
	return e
}

// openFiles counts the process's open file descriptors (Linux).
func openFiles() int {
	fds, _ := os.ReadDir("/proc/self/fd")
	return len(fds)
}
