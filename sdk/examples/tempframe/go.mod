module github.com/lwm2m-agent/lwm2m-agent/sdk/examples/tempframe

go 1.26.8

require github.com/lwm2m-agent/lwm2m-agent/sdk v0.1.0

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/hashicorp/go-plugin v1.8.0 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	github.com/oklog/run v1.1.0 // indirect
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250218202821-56aae31c358a // indirect
	google.golang.org/grpc v1.72.1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// Only for building inside the SDK's repository: the SDK of this checkout.
// A plugin of your own leaves this line out (sdk/README.md, Depend on the SDK).
replace github.com/lwm2m-agent/lwm2m-agent/sdk => ../..
