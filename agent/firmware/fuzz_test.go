package firmware

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// FuzzServePackage feeds ServePackage what a device's GET carries (the
// token of its path, its Block2 option, its transport and identity): it
// never panics, answers 2.05 only for the granted token, with the bytes
// of the package at the block asked for and no more than the block size
// the device asked.
func FuzzServePackage(f *testing.F) {
	st := storetest.OpenEmbedded(f)
	data := randomBytes(3000, 3)
	ctx := context.Background()
	b, err := st.CreateBinary(ctx, "acme", store.Binary{Name: "fw"}, bytes.NewReader(data), 1<<20)
	check(f, err)
	svc, err := New(Config{Store: st, CoAPBase: "coap://h", MaxTransfers: 1 << 20})
	check(f, err)
	uri, err := svc.Grant(ctx, Grant{Tenant: "acme", DeviceID: "10", OperationID: "op", Source: Source{BinaryID: b.ID}, Scheme: "coap", Expires: time.Now().Add(time.Hour)})
	check(f, err)
	token := uri[strings.LastIndex(uri, "/")+1:]
	f.Add(token, uint32(0), true, false, "")
	f.Add(token, uint32(2<<4|6), true, false, "")
	f.Add(token, uint32(7), true, true, "id-1")
	f.Add(token, uint32(0xffffffff), true, false, "")
	f.Add(token+"x", uint32(0), false, false, "")
	f.Add("", uint32(0), false, false, "")
	f.Fuzz(func(t *testing.T, tok string, block uint32, hasBlock, secure bool, identity string) {
		resp := svc.ServePackage(ctx, lwm2m.PackageRequest{Token: tok, Block2: block, HasBlock2: hasBlock, Secure: secure, Identity: identity})
		if resp.Code != codes.Content {
			return
		}
		if tok != token {
			t.Fatalf("token %q served", tok)
		}
		num, szx := parseBlock2(block, hasBlock)
		size := int64(1) << (szx + 4)
		off := num * size
		if int64(len(resp.Payload)) > size || off+int64(len(resp.Payload)) > int64(len(data)) ||
			!bytes.Equal(resp.Payload, data[off:off+int64(len(resp.Payload))]) {
			t.Fatalf("block %d of %d bytes: %d bytes that are not the package's", num, size, len(resp.Payload))
		}
		svc.transfers.revoke("acme/op") // each input a transfer of its own
	})
}
