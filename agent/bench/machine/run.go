package machine

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Binary is the agent binary a load run measures, from its -bin and
// -build flags.
type Binary struct {
	Path  string
	Build bool
}

// BinaryFlags registers -bin and -build on the command line's flags.
func BinaryFlags() *Binary {
	b := &Binary{}
	flag.StringVar(&b.Path, "bin", "bin/lwm2m-agent", "agent binary")
	flag.BoolVar(&b.Build, "build", true, "build the agent binary at -bin from this repository first")
	return b
}

// Prepare prints what the run runs on, "machine: <cpu>, <n> cores;
// <setting>", where setting says what shares the cores, and builds the
// binary when -build asks. It returns the number of cores.
func (b *Binary) Prepare(ctx context.Context, setting string) (int, error) {
	model, cores := CPU()
	fmt.Printf("machine: %s, %d cores; %s\n", model, cores, setting)
	if b.Build {
		if err := Build(ctx, b.Path); err != nil {
			return cores, err
		}
	}
	return cores, nil
}

// Fail ends a load run that cannot go on: err on standard error after
// the command's name, exit status 1.
func Fail(command string, err error) {
	fmt.Fprintln(os.Stderr, command+":", err)
	os.Exit(1)
}

// Phases returns the runner of a load run's phases: a phase named in
// list (comma separated) runs f on an agent of its own, which start
// starts with env and stop stops once f returns; others are skipped.
// A phase that fails ends the run through fail.
func Phases[A any](list string, start func(env ...string) (A, error), stop func(A), fail func(error)) func(name string, f func(A) error, env ...string) {
	run := map[string]bool{}
	for _, p := range strings.Split(list, ",") {
		run[strings.TrimSpace(p)] = true
	}
	return func(name string, f func(A) error, env ...string) {
		if !run[name] {
			return
		}
		a, err := start(env...)
		if err != nil {
			fail(err)
		}
		err = f(a)
		stop(a)
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
	}
}
