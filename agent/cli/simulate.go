package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/spf13/cobra"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// csvOptions say how the devices of a registration file connect.
type csvOptions struct {
	bootstrap       bool   // bootstrap first, instead of registering directly
	bootstrapURI    string // for NO_SEC devices
	bootstrapSecure string // for PSK devices
	server          string // for NO_SEC devices of lines without a server URI
	serverSecure    string // for PSK devices of lines without a server URI
}

// devicesFromCSV turns the valid lines of a bulk registration file into
// simulated devices. Lines the file format refuses, and lines whose
// device could not connect as written, come back as problems, one line
// each; the devices of the other lines are simulated.
func devicesFromCSV(r io.Reader, o csvOptions, base simulator.Config) ([]simulator.DeviceConfig, []string, error) {
	res, err := registry.ParseCSV(r, registry.Options{})
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	for _, f := range res.Failed {
		problems = append(problems, fmt.Sprintf("line %d (%s): %s", f.Line, f.DeviceID, f.Reason()))
	}
	devs := make([]simulator.DeviceConfig, 0, len(res.Devices))
	for _, d := range res.Devices {
		psk := d.SecurityMode == registry.SecurityPSK
		dc := simulator.DeviceConfig{Endpoint: d.EndpointID}
		if o.bootstrap {
			dc.BootstrapURI = o.bootstrapURI
			if psk {
				dc.BootstrapURI = o.bootstrapSecure
				dc.BootstrapPSKIdentity, dc.BootstrapPSK = d.BootstrapPSKID, d.BootstrapPSKKey
				if dc.BootstrapPSKIdentity == "" || len(dc.BootstrapPSK) == 0 {
					// Without bootstrap credentials of its own, the
					// device's LwM2M PSK opens the bootstrap session too.
					dc.BootstrapPSKIdentity, dc.BootstrapPSK = d.PSKID, d.PSKKey
				}
			}
		} else {
			dc.ServerURI = d.ServerURI
			if dc.ServerURI == "" {
				dc.ServerURI = o.server
				if psk {
					dc.ServerURI = o.serverSecure
				}
			}
			if psk {
				dc.PSKIdentity, dc.PSK = d.PSKID, d.PSKKey
			}
		}
		if err := dc.Validate(base); err != nil {
			problems = append(problems, fmt.Sprintf("line %d (%s): %v", d.Line, d.ID, err))
			continue
		}
		devs = append(devs, dc)
	}
	return devs, problems, nil
}

// parseSuites reads a comma-separated list of cipher suite names.
func parseSuites(s string) ([]piondtls.CipherSuiteID, error) {
	if s == "" {
		return nil, nil
	}
	known := map[string]piondtls.CipherSuiteID{}
	for _, id := range []piondtls.CipherSuiteID{
		piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
		piondtls.TLS_PSK_WITH_AES_128_CCM, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	} {
		known[id.String()] = id
	}
	var out []piondtls.CipherSuiteID
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		id, ok := known[name]
		if !ok {
			id, ok = known["TLS_PSK_WITH_AES_128_"+name]
		}
		if !ok {
			return nil, fmt.Errorf("cipher suite %q: not a PSK suite (TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256, ...)", name)
		}
		out = append(out, id)
	}
	return out, nil
}

// summary prints what the devices achieved and every device that failed.
func summary(w io.Writer, sim *simulator.Simulator) (failed int) {
	var boot, reg int
	eps := sim.Endpoints()
	for _, ep := range eps {
		d := sim.Device(ep)
		if d.Bootstrapped() {
			boot++
		}
		if d.Registered() {
			reg++
		}
	}
	fails := sim.Failures()
	fmt.Fprintf(w, "%d devices: %d bootstrapped, %d registered, %d failed\n", len(eps), boot, reg, len(fails))
	for _, d := range fails {
		fmt.Fprintf(w, "failed %s: %v\n", d.Endpoint(), d.Err())
	}
	return len(fails)
}

// The bootstrap servers of `make run`, taken for the kind of device whose
// server was not given when the other one was.
const (
	defaultBootstrapURI       = "coap://127.0.0.1:5683"
	defaultBootstrapSecureURI = "coaps://127.0.0.1:5684"
)

func simulateCmd() *cobra.Command {
	var (
		cfg             simulator.Config
		logLevel        string
		every           time.Duration
		csvFile         string
		opts            csvOptions
		serverSecure    string
		suites          string
		untilRegistered bool
		format          string
		objectsFile     string
		ddfFiles        []string
		updateRate      float64
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "run simulated LwM2M devices against a server",
		Long: "Runs many simulated LwM2M clients in one process. Each registers, keeps its\n" +
			"registration alive, answers every device-management request and sends\n" +
			"notifications of changing values (3303/0/5700 temperature, 4/0/2 signal).\n\n" +
			"With --csv the devices, their endpoints and PSK keys come from a bulk\n" +
			"registration file; lines the file format refuses are listed and skipped.\n" +
			"Given --bootstrap or --bootstrap-secure, every device first bootstraps\n" +
			"(NO_SEC devices at --bootstrap, PSK devices at --bootstrap-secure with their\n" +
			"bootstrap PSK) and registers to the server account it is given; otherwise\n" +
			"each registers directly to its line's lwm2m server uri with its PSK.\n" +
			"Once every device registered or failed, a summary lists the failures;\n" +
			"--until-registered then exits, with status 1 if any device failed.\n\n" +
			"--ddf gives the devices objects of their own, from DDF files; --objects names\n" +
			"a JSON file saying what their resources hold (a value, hex bytes, a file's\n" +
			"contents, a counter, a random walk, random bytes), how often each is measured\n" +
			"and whether it is reported as a notification or with LwM2M Send\n" +
			"(docs/simulator.md; examples/simulator/frame-sensor.json).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = newLogger(os.Stderr, logLevel, "text")
			out := cmd.OutOrStdout()
			var err error
			if cfg.CipherSuites, err = parseSuites(suites); err != nil {
				return err
			}
			if format != "" {
				f, err := codec.ParseFormatName(format)
				if err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				cfg.Format = f
			}
			if objectsFile != "" || len(ddfFiles) > 0 {
				if cfg.Objects, err = simulator.LoadObjects(objectsFile, ddfFiles); err != nil {
					return err
				}
			}
			bootstrapping := opts.bootstrapURI != "" || opts.bootstrapSecure != ""
			if bootstrapping {
				// one bootstrap server given: the other kind of device
				// bootstraps at the same host's usual port
				opts.bootstrapURI = cmp.Or(opts.bootstrapURI, defaultBootstrapURI)
				opts.bootstrapSecure = cmp.Or(opts.bootstrapSecure, defaultBootstrapSecureURI)
			}
			skipped := 0
			if csvFile != "" {
				f, err := os.Open(csvFile)
				if err != nil {
					return err
				}
				opts.bootstrap = bootstrapping
				opts.server, opts.serverSecure = cfg.Server, serverSecure
				devs, problems, err := devicesFromCSV(f, opts, cfg)
				_ = f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", csvFile, err)
				}
				for _, p := range problems {
					fmt.Fprintf(out, "skipped %s\n", p)
				}
				skipped = len(problems)
				if len(devs) == 0 {
					return fmt.Errorf("%s: no device to simulate (%d lines skipped)", csvFile, skipped)
				}
				cfg.Devices = devs
				fmt.Fprintf(out, "%s: %d devices, %d lines skipped\n", csvFile, len(devs), skipped)
			} else if bootstrapping {
				cfg.Bootstrap = opts.bootstrapURI
			}
			sim, err := simulator.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			// before the devices start: a signal never finds the default
			// action, which would end the process
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			defer signal.Stop(usr1)
			done := make(chan error, 1)
			go func() { done <- sim.Run(ctx) }()
			t := time.NewTicker(every)
			defer t.Stop()
			settled := sim.Settled()
			failed := 0
			for {
				select {
				case <-usr1:
					go updateAll(ctx, sim, updateRate)
				case err := <-done:
					if err != nil {
						return err
					}
					if !untilRegistered {
						failed = summary(out, sim)
					}
					switch {
					case failed > 0:
						return fmt.Errorf("%d of %d devices failed", failed, len(sim.Endpoints()))
					case skipped > 0:
						return fmt.Errorf("%d lines skipped", skipped)
					}
					return nil
				case <-settled:
					settled = nil
					failed = summary(out, sim)
					if untilRegistered {
						stop()
					}
				case <-t.C:
					s := sim.Stats()
					fmt.Fprintf(out, "registered %d/%d  %+v\n", sim.Registered(), len(sim.Endpoints()), s)
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "127.0.0.1:5783", "LwM2M server address (host:port, or a coap:// URI)")
	f.StringVar(&serverSecure, "server-secure", "coaps://127.0.0.1:5784", "LwM2M server of PSK devices whose CSV line has no server URI")
	f.StringVar(&csvFile, "csv", "", "simulate the devices of a bulk registration CSV file (endpoints, PSK keys)")
	f.StringVar(&opts.bootstrapURI, "bootstrap", "", "bootstrap server of NO_SEC devices, e.g. "+defaultBootstrapURI+"; given, devices bootstrap before they register ("+defaultBootstrapURI+" when only --bootstrap-secure is given)")
	f.StringVar(&opts.bootstrapSecure, "bootstrap-secure", "", "bootstrap server of PSK devices, e.g. "+defaultBootstrapSecureURI+"; given, devices bootstrap before they register ("+defaultBootstrapSecureURI+" when only --bootstrap is given)")
	f.StringVar(&suites, "cipher-suites", "", "DTLS cipher suites offered, most preferred first (CCM_8,CBC_SHA256 when not given)")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", simulator.DefaultHandshakeTimeout, "how long a DTLS handshake may take")
	f.DurationVar(&cfg.BootstrapTimeout, "bootstrap-timeout", simulator.DefaultBootstrapTimeout, "how long a device waits for Bootstrap-Finish")
	f.BoolVar(&untilRegistered, "until-registered", false, "exit once every device registered or failed (status 1 if any failed)")
	f.IntVar(&cfg.Count, "count", 1, "number of devices (without --csv)")
	f.StringVar(&cfg.Prefix, "prefix", "sim", "endpoint prefix; endpoints are PREFIX-N (without --csv)")
	f.IntVar(&cfg.Start, "start", 0, "first N")
	f.StringVar(&cfg.Version, "lwm2m-version", "1.1", "LwM2M version: 1.0 (TLV), 1.1 or 1.2 (SenML CBOR)")
	f.StringVar(&format, "format", "", "content format the devices declare (ct=) and answer reads in: TLV, JSON (LwM2M 1.0 JSON), SENML_JSON or SENML_CBOR (default TLV for 1.0, SENML_CBOR otherwise)")
	f.BoolVar(&cfg.Strict10, "strict-1.0", false, "refuse (4.00) LwM2M JSON writes and creates not in the 1.0 specification's shape, and creates without payload, as strict 1.0 clients do")
	f.DurationVar(&cfg.Lifetime, "lifetime", 300*time.Second, "registration lifetime")
	f.DurationVar(&cfg.NotifyInterval, "notify-interval", time.Second, "how often observed values change; 0 never")
	f.BoolVar(&cfg.NotifyCON, "con", false, "send notifications as confirmable messages")
	f.DurationVar(&cfg.AwakeTime, "awake", 0, "sleeping devices: register with this awake time (at=) and answer requests only that long after each Register or Update (0: always listening)")
	f.DurationVar(&cfg.UpdateEvery, "update-every", 0, "send an Update this often (0: after about half the lifetime)")
	f.Float64Var(&updateRate, "update-rate", 0, "on SIGUSR1 every device sends an Update at once, this many devices a second (0: all together)")
	f.StringVar(&cfg.Binding, "binding", "U", "binding mode (U or UQ)")
	f.Float64Var(&cfg.RegisterRate, "rate", 0, "registrations per second at start (0: as fast as the server takes them)")
	f.StringVar(&cfg.Bind, "bind", "", "local IP address of the devices' sockets (e.g. 127.0.1.1 to spread load runs)")
	f.StringSliceVar(&cfg.Firmware.Protocols, "fw-protocols", nil, "pull protocols the devices support, reported in /5/0/8: coap, coaps, http, https (default all four)")
	f.StringVar(&cfg.Firmware.Delivery, "fw-delivery", "both", "firmware delivery the devices take, reported in /5/0/9: pull, push or both")
	f.BoolVar(&cfg.Firmware.RefuseUnsupported, "fw-refuse-unsupported", false, "answer a Package URI of an unsupported scheme 4.00 instead of Update Result 9")
	f.IntVar(&cfg.Firmware.BlockSize, "fw-block-size", simulator.DefaultFirmwareBlockSize, "largest firmware block the devices take (push) and ask for (CoAP pull): 16 to 1024")
	f.Int64Var(&cfg.Firmware.MaxSize, "fw-max-size", simulator.DefaultFirmwareMaxSize, "flash for a firmware package, in bytes; a larger one fails with Update Result 2")
	f.Int64Var(&cfg.Firmware.Fail, "fw-fail", 0, "make every firmware update fail with this Update Result (2 to 9) where a device meets it")
	f.Int64Var(&cfg.Firmware.StallAfter, "fw-stall-after", 0, "stop answering the first push after this many bytes, until the server resumes it (0: never)")
	f.BoolVar(&cfg.Firmware.KeepProgress, "fw-keep-progress", false, "keep a firmware transfer under way across a reboot (default: lost, State 0)")
	f.BoolVar(&cfg.Firmware.Cancel, "fw-cancel", false, "give the firmware object Cancel (/5/0/10, object version 1.2)")
	f.StringVar(&objectsFile, "objects", "", "JSON file of the devices' objects: DDF files, and per resource its value, measurement period and report (notify or send)")
	f.StringArrayVar(&ddfFiles, "ddf", nil, "DDF file of objects the devices have besides the built-in ones (instance 0, mandatory resources at zero); repeat for more")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	f.DurationVar(&every, "stats-every", 5*time.Second, "how often to print statistics")
	return cmd
}

// updateAll makes every device send an Update now, rate devices a second
// (0: all together): a load run asks for them at a moment of its
// choosing, as a fleet whose Updates fall due together would send them.
func updateAll(ctx context.Context, sim *simulator.Simulator, rate float64) {
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
	}
	for _, ep := range sim.Endpoints() {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		sim.Device(ep).Update()
	}
}
