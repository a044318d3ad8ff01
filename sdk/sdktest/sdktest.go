// Package sdktest runs a plugin implementation behind a real gRPC server on
// an in-memory connection, so a plugin's tests go through the same
// encoding, validation and error mapping as the agent's calls, without a
// subprocess or a port.
package sdktest

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Decoder serves d and returns a client of it; both stop when the test ends.
func Decoder(t testing.TB, d sdk.Decoder) sdk.DecoderClient {
	return sdk.NewDecoderClient(Conn(t, func(s *grpc.Server) { sdk.RegisterDecoder(s, d) }))
}

// Mapper serves m and returns a client of it.
func Mapper(t testing.TB, m sdk.Mapper) sdk.Mapper {
	return sdk.NewMapperClient(Conn(t, func(s *grpc.Server) { sdk.RegisterMapper(s, m) }))
}

// CustomAction serves a and returns a client of it.
func CustomAction(t testing.TB, a sdk.CustomAction) sdk.CustomAction {
	return sdk.NewCustomActionClient(Conn(t, func(s *grpc.Server) { sdk.RegisterCustomAction(s, a) }))
}

// Conn starts a gRPC server with the services register adds, on an
// in-memory listener, and returns a connection to it. The server and the
// connection close when the test ends.
func Conn(t testing.TB, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	register(s)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(lis) })
	cc, err := grpc.NewClient("passthrough:///sdktest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Stop()
		wg.Wait()
		t.Fatalf("sdktest: dial: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		s.Stop()
		wg.Wait()
	})
	return cc
}
