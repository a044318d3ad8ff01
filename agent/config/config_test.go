package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/spf13/pflag"
)

func TestLoadEnvAndValidate(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "defaults are valid",
			check: func(t *testing.T, c Config) {
				if c.CoAPAddr != ":5783" || c.HTTPAddr != ":8080" || c.AutoRegister {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "environment applies",
			env:  map[string]string{"LWM2M_AGENT_AUTO_REGISTER": "true", "LWM2M_AGENT_COAP_ADDR": "127.0.0.1:0", "LWM2M_AGENT_REQUEST_TIMEOUT": "5s"},
			check: func(t *testing.T, c Config) {
				if !c.AutoRegister || c.CoAPAddr != "127.0.0.1:0" || c.RequestTimeout != 5*time.Second {
					t.Errorf("env not applied: %+v", c)
				}
			},
		},
		{
			name: "flag wins over environment",
			env:  map[string]string{"LWM2M_AGENT_HTTP_ADDR": ":9000"},
			args: []string{"--http-addr", ":9100"},
			check: func(t *testing.T, c Config) {
				if c.HTTPAddr != ":9100" {
					t.Errorf("http addr %q, want the flag's :9100", c.HTTPAddr)
				}
			},
		},
		{name: "bad boolean", env: map[string]string{"LWM2M_AGENT_AUTO_REGISTER": "yes please"}, wantErr: "LWM2M_AGENT_AUTO_REGISTER"},
		{name: "bad duration", env: map[string]string{"LWM2M_AGENT_REQUEST_TIMEOUT": "10"}, wantErr: "LWM2M_AGENT_REQUEST_TIMEOUT"},
		{name: "bad address", env: map[string]string{"LWM2M_AGENT_COAP_ADDR": "5783"}, wantErr: "coap-addr"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "log-level"},
		{name: "zero nstart", args: []string{"--nstart", "0"}, wantErr: "nstart"},
		{name: "idle shorter than a request", args: []string{"--coap-idle-timeout", "10s"}, wantErr: "coap-idle-timeout"},
		{
			name: "registration limits from the environment",
			env:  map[string]string{"LWM2M_AGENT_MAX_REQUEST_TIMEOUT": "90s", "LWM2M_AGENT_CREDENTIALS_HASH_COST": "8"},
			check: func(t *testing.T, c Config) {
				if c.MaxRequestTimeout != 90*time.Second || c.CredentialsHashCost != 8 {
					t.Errorf("max request timeout %v, hash cost %d", c.MaxRequestTimeout, c.CredentialsHashCost)
				}
			},
		},
		{
			name: "registration limit defaults",
			check: func(t *testing.T, c Config) {
				if c.MaxRequestTimeout != 5*time.Minute || c.CredentialsHashCost != 4 {
					t.Errorf("max request timeout %v, hash cost %d", c.MaxRequestTimeout, c.CredentialsHashCost)
				}
			},
		},
		{name: "zero max request timeout", args: []string{"--max-request-timeout", "0s"}, wantErr: "max-request-timeout"},
		{name: "max request timeout below request timeout", args: []string{"--max-request-timeout", "10s"}, wantErr: "max-request-timeout: 10s must not be below request-timeout 30s"},
		{name: "max request timeout too large", args: []string{"--max-request-timeout", "1000h"}, wantErr: "max-request-timeout"},
		{name: "hash cost too low", env: map[string]string{"LWM2M_AGENT_CREDENTIALS_HASH_COST": "3"}, wantErr: "credentials-hash-cost: 3 must be between 4 and 31"},
		{name: "hash cost too high", args: []string{"--credentials-hash-cost", "32"}, wantErr: "credentials-hash-cost"},
		{
			name: "operation queue from the environment",
			env: map[string]string{"LWM2M_AGENT_AWAKE_TIME": "20s", "LWM2M_AGENT_MAX_OPERATIONS_PER_WAKEUP": "4",
				"LWM2M_AGENT_OPERATION_ATTEMPTS": "5", "LWM2M_AGENT_EXECUTING_TIMEOUT": "6m"},
			check: func(t *testing.T, c Config) {
				if c.AwakeTime != 20*time.Second || c.MaxOperationsPerWakeup != 4 || c.OperationAttempts != 5 || c.ExecutingTimeout != 6*time.Minute {
					t.Errorf("awake %v, per wakeup %d, attempts %d, executing timeout %v", c.AwakeTime, c.MaxOperationsPerWakeup, c.OperationAttempts, c.ExecutingTimeout)
				}
			},
		},
		{
			name: "operation queue defaults",
			check: func(t *testing.T, c Config) {
				if c.AwakeTime != 0 || c.MaxOperationsPerWakeup != 10 || c.OperationAttempts != 3 || c.ExecutingTimeout != 10*time.Minute {
					t.Errorf("awake %v, per wakeup %d, attempts %d, executing timeout %v", c.AwakeTime, c.MaxOperationsPerWakeup, c.OperationAttempts, c.ExecutingTimeout)
				}
			},
		},
		{name: "negative awake time", args: []string{"--awake-time", "-1s"}, wantErr: "awake-time"},
		{name: "zero operations per wakeup", args: []string{"--max-operations-per-wakeup", "0"}, wantErr: "max-operations-per-wakeup"},
		{name: "zero attempts", env: map[string]string{"LWM2M_AGENT_OPERATION_ATTEMPTS": "0"}, wantErr: "operation-attempts"},
		{name: "executing timeout within the request timeout", args: []string{"--executing-timeout", "5m"}, wantErr: "executing-timeout: 5m0s must be longer than max-request-timeout 5m0s"},
		{
			name: "firmware timeout",
			env:  map[string]string{"LWM2M_AGENT_FIRMWARE_TIMEOUT": "2h"},
			check: func(t *testing.T, c Config) {
				if c.FirmwareTimeout != 2*time.Hour {
					t.Errorf("firmware timeout %v, want 2h", c.FirmwareTimeout)
				}
			},
		},
		{
			name: "firmware timeout default",
			check: func(t *testing.T, c Config) {
				if c.FirmwareTimeout != 30*time.Minute {
					t.Errorf("firmware timeout %v, want 30m", c.FirmwareTimeout)
				}
			},
		},
		{name: "firmware timeout within the request timeout", args: []string{"--firmware-timeout", "1m"}, wantErr: "firmware-timeout: 1m0s must be longer than max-request-timeout 5m0s"},
		{name: "zero peer rate", env: map[string]string{"LWM2M_AGENT_PEER_RATE": "0"}, wantErr: "peer-rate"},
		{
			name: "external url from the environment",
			env:  map[string]string{"LWM2M_AGENT_EXTERNAL_URL": "https://agent.example.com:8443/lwm2m"},
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "https://agent.example.com:8443/lwm2m" {
					t.Errorf("external url %q", c.ExternalURL)
				}
			},
		},
		{name: "external url http", args: []string{"--external-url", "http://10.0.0.5:8080"}, check: func(*testing.T, Config) {}},
		{name: "external url not http", args: []string{"--external-url", "ftp://agent.example.com"}, wantErr: "external-url"},
		{name: "external url relative", args: []string{"--external-url", "/lwm2m"}, wantErr: "external-url"},
		{name: "external url without host", args: []string{"--external-url", "https:///lwm2m"}, wantErr: "names no host"},
		{name: "external url with query", args: []string{"--external-url", "https://agent.example.com/?a=1"}, wantErr: "has a query"},
		{name: "external url with empty query", args: []string{"--external-url", "https://agent.example.com/?"}, wantErr: "has a query"},
		{name: "external url with fragment", env: map[string]string{"LWM2M_AGENT_EXTERNAL_URL": "https://agent.example.com/#top"}, wantErr: "has a fragment"},
		{name: "external url with credentials", args: []string{"--external-url", "https://u:p@agent.example.com"}, wantErr: "carries credentials"},
		{
			name: "request limits from the environment",
			env: map[string]string{"LWM2M_AGENT_MAX_JSON_DEPTH": "16", "LWM2M_AGENT_MAX_CSV_FIELDS": "200",
				"LWM2M_AGENT_MAX_DDF_OBJECTS": "10", "LWM2M_AGENT_STORE_REQUEST_TIMEOUT": "3s"},
			check: func(t *testing.T, c Config) {
				if c.MaxJSONDepth != 16 || c.MaxCSVFields != 200 || c.MaxDDFObjects != 10 || c.StoreRequestTimeout != 3*time.Second {
					t.Errorf("depth %d, csv fields %d, ddf objects %d, store timeout %v", c.MaxJSONDepth, c.MaxCSVFields, c.MaxDDFObjects, c.StoreRequestTimeout)
				}
			},
		},
		{
			name: "request limit defaults",
			check: func(t *testing.T, c Config) {
				if c.MaxDocumentSize != 1<<20 || c.MaxJSONDepth != 32 || c.MaxJSONMembers != 1000 || c.MaxJSONArray != 10_000 ||
					c.MaxJSONValues != 20_000 || c.MaxFragmentSize != 256<<10 || c.MaxDDFSize != 4<<20 || c.MaxDDFObjects != 100 ||
					c.MaxDDFResources != 1000 || c.MaxCSVLineSize != 64<<10 || c.MaxCSVFields != 1000 || c.StoreRequestTimeout != 10*time.Second {
					t.Errorf("limits %+v", c)
				}
			},
		},
		{name: "json depth beyond the store's", args: []string{"--max-json-depth", "91"}, wantErr: "max-json-depth: 91 must be at most 90"},
		{name: "json depth too small", args: []string{"--max-json-depth", "1"}, wantErr: "max-json-depth: 1 must be at least 2"},
		{name: "no members", args: []string{"--max-json-members", "0"}, wantErr: "max-json-members: 0 must be at least 16"},
		{name: "ddf size beyond the parser's", args: []string{"--max-ddf-size", "9000000"}, wantErr: "max-ddf-size: 9000000 must be at most 8388608"},
		{name: "tiny csv lines", env: map[string]string{"LWM2M_AGENT_MAX_CSV_LINE_SIZE": "100"}, wantErr: "max-csv-line-size: 100 must be at least 1024"},
		{name: "no store time", args: []string{"--store-request-timeout", "0s"}, wantErr: "store-request-timeout"},
		{name: "negative retention", env: map[string]string{"LWM2M_AGENT_RETENTION_EVENT_DAYS": "-1"}, wantErr: "retention-event-days: -1 must be 0 (keep forever) or a number of days up to 36500"},
		{name: "retention passes back to back", args: []string{"--retention-interval", "0s"}, wantErr: "retention-interval: 0s must be at least 1s"},
		{name: "retention by the day", args: []string{"--retention-measurement-days", "7", "--retention-operation-days", "0"},
			check: func(t *testing.T, c Config) {
				if c.RetentionMeasurementDays != 7 || c.RetentionOperationDays != 0 || c.RetentionEventDays != 90 {
					t.Errorf("retention %d/%d/%d days", c.RetentionMeasurementDays, c.RetentionOperationDays, c.RetentionEventDays)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			c.Bind(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := c.LoadEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, fs)
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// The development setup listens on loopback only, unless an address was
// given, which it keeps and reports when it reaches beyond loopback.
func TestApplyDev(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dev      bool
		given    map[string]string
		want     func(c Config) []string // the addresses, in listenAddrs order
		exposed  []string
		autoReg  bool
		password string
	}{
		{name: "off", dev: false,
			want:    func(c Config) []string { return []string{":5783", ":5784", ":5683", ":5684", ":8080", "", ""} },
			autoReg: false, password: ""},
		{name: "defaults to loopback", dev: true,
			want: func(c Config) []string {
				return []string{"127.0.0.1:5783", "127.0.0.1:5784", "127.0.0.1:5683", "127.0.0.1:5684", "127.0.0.1:8080", "", ""}
			},
			autoReg: true, password: DevAdminPassword},
		{name: "given addresses kept", dev: true,
			given: map[string]string{"coap-addr": "0.0.0.0:6000", "http-addr": "localhost:9000", "coaps-addr": "", "admin-password": "Other-pass-1!", "auto-register": "false"},
			want: func(c Config) []string {
				return []string{"0.0.0.0:6000", "", "127.0.0.1:5683", "127.0.0.1:5684", "localhost:9000", "", ""}
			},
			exposed: []string{"coap-addr=0.0.0.0:6000"},
			autoReg: false, password: "Other-pass-1!"},
		{name: "port 0 stays a free port on loopback", dev: true,
			given: map[string]string{"pprof-addr": "[::1]:6060", "bootstrap-addr": "127.0.0.2:0"},
			want: func(c Config) []string {
				return []string{"127.0.0.1:5783", "127.0.0.1:5784", "127.0.0.2:0", "127.0.0.1:5684", "127.0.0.1:8080", "", "[::1]:6060"}
			},
			autoReg: true, password: DevAdminPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Dev = tc.dev
			env := map[string]string{}
			for k, v := range tc.given {
				env[EnvName(k)] = v
			}
			if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil); err != nil {
				t.Fatal(err)
			}
			exposed := c.ApplyDev(func(name string) bool { _, ok := tc.given[name]; return ok })
			var got []string
			for _, a := range c.listenAddrs() {
				got = append(got, *a.v)
			}
			if !slices.Equal(got, tc.want(c)) {
				t.Errorf("addresses %q, want %q", got, tc.want(c))
			}
			if !slices.Equal(exposed, tc.exposed) {
				t.Errorf("exposed %q, want %q", exposed, tc.exposed)
			}
			if c.AutoRegister != tc.autoReg || c.AdminPassword != tc.password {
				t.Errorf("auto-register %v password %q, want %v %q", c.AutoRegister, c.AdminPassword, tc.autoReg, tc.password)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

// The bound of --max-ddf-size is what the DDF parser reads.
func TestMaxDDFSizeIsTheParsers(t *testing.T) {
	if ddfSizeCeiling != model.MaxDDFSize {
		t.Fatalf("the ceiling of --max-ddf-size is %d, model.MaxDDFSize %d", ddfSizeCeiling, model.MaxDDFSize)
	}
}
