package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/engine"
)

// Exit codes of the store commands, beyond 0 for success.
const (
	// exitFailed: nothing was written to the target (or the export
	// failed); the command may simply be run again.
	exitFailed = 1
	// exitPartial: an import wrote some batches before it failed; the
	// target holds part of the dump and must be emptied before another
	// import.
	exitPartial = 2
)

// exitError is an error with the process's exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// exitCode is the status Main exits with for err.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFailed
}

// importFailed gives an import's error its exit code.
func importFailed(err error) error {
	var ie *store.ImportError
	if errors.As(err, &ie) && ie.Imported.Total() > 0 {
		return &exitError{code: exitPartial, err: err}
	}
	return err
}

const secretsNote = "The dump holds every secret of the store: the users' password hashes and\n" +
	"the devices' PSK keys (a backup must restore devices that authenticate).\n" +
	"Keep it as you keep the store: the file is written readable by its owner\n" +
	"only (0600), and nothing of its records is ever logged."

func storeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "export, import or copy a whole store: backups, and moves between the embedded store and MongoDB",
		Long: "Moves a whole store, every tenant with its users, devices, keys, operations,\n" +
			"telemetry and files, in the dump format of docs/store-format.md: JSON Lines,\n" +
			"engine-neutral, versioned, with a last line that tells a whole dump from a\n" +
			"truncated one. A store is named by --data-dir (the embedded store of that\n" +
			"data directory) or --mongo-uri, or, without either, by LWM2M_AGENT_MONGO_URI\n" +
			"or else LWM2M_AGENT_DATA_DIR, as the agent reads them.\n\n" + secretsNote + "\n\n" +
			"Exit status: 0 done; 1 failed, with nothing written to the target; 2 an\n" +
			"import failed after writing part of the dump (empty the target before\n" +
			"importing again).",
	}
	cmd.AddCommand(storeExportCmd(), storeImportCmd(), storeCopyCmd())
	return cmd
}

// location names a store: an embedded one by its data directory, or a
// MongoDB deployment by its URI.
type location struct {
	dataDir, mongoURI string
}

func (l location) String() string {
	if l.mongoURI != "" {
		return "MongoDB " + store.RedactURI(l.mongoURI)
	}
	return "the embedded store in " + l.dataDir
}

func (l location) engine() string {
	if l.mongoURI != "" {
		return "mongodb"
	}
	return "embedded"
}

// flagLocation reads --data-dir and --mongo-uri, and without either the
// agent's variables: the MongoDB URI first, as the agent prefers it.
func flagLocation(dataDir, mongoURI string) (location, error) {
	switch {
	case dataDir != "" && mongoURI != "":
		return location{}, errors.New("name one store: --data-dir or --mongo-uri, not both")
	case dataDir != "" || mongoURI != "":
		return location{dataDir: dataDir, mongoURI: mongoURI}, nil
	}
	if uri := os.Getenv(config.EnvName("mongo-uri")); uri != "" {
		return location{mongoURI: uri}, nil
	}
	if dir := os.Getenv(config.EnvName("data-dir")); dir != "" {
		return location{dataDir: dir}, nil
	}
	return location{}, fmt.Errorf("name the store: --data-dir DIR or --mongo-uri URI (or %s, %s)",
		config.EnvName("mongo-uri"), config.EnvName("data-dir"))
}

// parseLocation reads a location of store copy: dir:PATH, or a MongoDB
// URI.
func parseLocation(s string) (location, error) {
	switch {
	case strings.HasPrefix(s, "dir:") && len(s) > len("dir:"):
		return location{dataDir: strings.TrimPrefix(s, "dir:")}, nil
	case strings.HasPrefix(s, "mongodb://"), strings.HasPrefix(s, "mongodb+srv://"):
		return location{mongoURI: s}, nil
	}
	return location{}, fmt.Errorf("store %q: use dir:DATA_DIR for the embedded store, or a mongodb:// URI", store.RedactURI(s))
}

// openStore opens the store at l: the embedded engine in a data
// directory, or MongoDB. (The agent's own opener, which this follows,
// is to be shared; until then this is the commands' own.) A source must
// exist: an embedded store that is not there would be created, and
// found empty. The engine's refusal of an embedded store that another
// process holds is returned as it is.
func openStore(ctx context.Context, l location, source bool, log *slog.Logger) (store.Engine, error) {
	e, _, err := engine.Open(ctx, engine.Config{MongoURI: l.mongoURI, DataDir: l.dataDir, Existing: source, Logger: log})
	if err != nil {
		if source && l.mongoURI == "" {
			// the engine's own message names the directory and the way out
			return nil, err
		}
		return nil, fmt.Errorf("open %s: %w", l, err)
	}
	return e, nil
}

func closeStore(s store.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Close(ctx)
}

// progress prints the counts so far on w at most once a second, as
// "exported: tenant 2, user 3, managedObject 10000".
type progress struct {
	w    io.Writer
	verb string
	last time.Time
}

func (p *progress) update(c store.Counts) {
	if now := time.Now(); now.Sub(p.last) >= time.Second {
		p.last = now
		fmt.Fprintf(p.w, "%s so far: %v\n", p.verb, c)
	}
}

func storeFlags(cmd *cobra.Command, dataDir, mongoURI *string) {
	cmd.Flags().StringVar(dataDir, "data-dir", "", "data directory of the embedded store")
	cmd.Flags().StringVar(mongoURI, "mongo-uri", "", "MongoDB URI of the store")
}

func storeExportCmd() *cobra.Command {
	var dataDir, mongoURI, output string
	cmd := &cobra.Command{
		Use:   "export [--data-dir DIR | --mongo-uri URI] [-o FILE|-]",
		Short: "write the whole store to a dump file (a backup)",
		Long: "Writes every record of the store to FILE (or standard output with -o -),\n" +
			"then the end line with the count of each kind. An embedded store is read as\n" +
			"one commit left it; stop its agent first: only one process may have it open\n" +
			"(the engine's refusal is the command's error). A MongoDB store may be in\n" +
			"use: what agents write while the export runs may or may not be in it.\n" +
			"FILE is written whole or not at all (a temporary file, renamed when\n" +
			"complete).\n\n" + secretsNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, err := flagLocation(dataDir, mongoURI)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "-" {
				if f, ok := out.(*os.File); ok {
					if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
						return errors.New("not writing the dump, which holds the store's secrets, to a terminal: use -o FILE, or redirect the output")
					}
				}
			}
			ctx := cmd.Context()
			src, err := openStore(ctx, loc, true, newLogger(cmd.ErrOrStderr(), "warn", "text"))
			if err != nil {
				return err
			}
			defer closeStore(src)
			p := &progress{w: cmd.ErrOrStderr(), verb: "exported", last: time.Now()}
			h := store.DumpHeader{Engine: loc.engine(), Agent: versionString()}
			var counts store.Counts
			if output == "-" {
				counts, err = store.ExportDump(ctx, src, out, h, p.update)
			} else {
				err = writeFileAtomic(output, func(w io.Writer) error {
					var err error
					counts, err = store.ExportDump(ctx, src, w, h, p.update)
					return err
				})
			}
			if err != nil {
				return fmt.Errorf("export %s: %w", loc, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d records of %s to %s: %v\n", counts.Total(), loc, output, counts)
			return nil
		},
	}
	storeFlags(cmd, &dataDir, &mongoURI)
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write the dump to; - for standard output")
	return cmd
}

// writeFileAtomic writes name through a temporary file beside it, mode
// 0600, synced and renamed over name only once write succeeded: a
// failed export leaves no file that looks like a backup.
func writeFileAtomic(name string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func storeImportCmd() *cobra.Command {
	var dataDir, mongoURI string
	cmd := &cobra.Command{
		Use:   "import [--data-dir DIR | --mongo-uri URI] FILE|-",
		Short: "load a dump file into an empty store",
		Long: "Loads a dump into a store that holds nothing but, at most, the management\n" +
			"tenant a first start creates, with its users: the dump's management tenant\n" +
			"and users replace it. Ids stay as in the dump, and the id counter is raised\n" +
			"so that new ids never take one of them. A FILE is read whole first, and\n" +
			"nothing is written unless it is a complete, valid dump of kinds the target\n" +
			"stores; from standard input (-) records are written in batches as they come,\n" +
			"so a dump found truncated or bad there fails after the batches before it\n" +
			"(exit status 2). Each batch is written all or nothing. Stop the agent of an\n" +
			"embedded target first: only one process may have it open.\n\n" + secretsNote,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := flagLocation(dataDir, mongoURI)
			if err != nil {
				return err
			}
			var in io.Reader = cmd.InOrStdin()
			var kinds store.Counts
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
				// A file is read twice, checked whole first; a pipe or a
				// device is read once, as standard input is.
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					if _, kinds, err = store.VerifyDump(f); err != nil {
						return fmt.Errorf("%s: %w; nothing was imported", args[0], err)
					}
					if _, err := f.Seek(0, io.SeekStart); err != nil {
						return err
					}
				}
			}
			ctx := cmd.Context()
			dst, err := openStore(ctx, loc, false, newLogger(cmd.ErrOrStderr(), "warn", "text"))
			if err != nil {
				return err
			}
			defer closeStore(dst)
			if err := storesKinds(dst, kinds); err != nil {
				return fmt.Errorf("import into %s: %w; nothing was imported", loc, err)
			}
			p := &progress{w: cmd.ErrOrStderr(), verb: "imported", last: time.Now()}
			counts, err := store.ImportDump(ctx, dst, in, store.ImportOptions{Progress: p.update})
			if err != nil {
				return importFailed(fmt.Errorf("import %s into %s: %w", args[0], loc, err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %d records into %s: %v\n", counts.Total(), loc, counts)
			return nil
		},
	}
	storeFlags(cmd, &dataDir, &mongoURI)
	return cmd
}

// storesKinds refuses, before anything is written, a dump with records
// of kinds the target does not store (yet).
func storesKinds(dst store.Engine, counts store.Counts) error {
	var missing []string
	for _, k := range store.DumpKinds {
		if counts[k] > 0 && !slices.Contains(dst.DumpKinds(), k) {
			missing = append(missing, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the dump holds records this store cannot take: %s", errors.ErrUnsupported, strings.Join(missing, ", "))
	}
	return nil
}

func storeCopyCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "copy --from dir:DATA_DIR|mongodb://... --to dir:DATA_DIR|mongodb://...",
		Short: "copy a whole store into an empty one, such as the embedded store into MongoDB",
		Long: "Copies a store into another as an export and an import would, without a\n" +
			"file: dir:DATA_DIR names the embedded store of a data directory, a\n" +
			"mongodb:// or mongodb+srv:// URI a MongoDB database. The target must be\n" +
			"empty, as for import; records are written in batches, each all or nothing,\n" +
			"so a copy that fails part way exits with status 2 and leaves part of the\n" +
			"store in the target. Stop the agents of both stores first.\n\n" +
			"Nothing of the store's secrets is written anywhere but into the target.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := parseLocation(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			dst, err := parseLocation(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if src == dst {
				return errors.New("--from and --to name the same store")
			}
			ctx := cmd.Context()
			log := newLogger(cmd.ErrOrStderr(), "warn", "text")
			s, err := openStore(ctx, src, true, log)
			if err != nil {
				return err
			}
			defer closeStore(s)
			d, err := openStore(ctx, dst, false, log)
			if err != nil {
				return err
			}
			defer closeStore(d)
			if missing := slices.DeleteFunc(s.DumpKinds(), func(k string) bool { return slices.Contains(d.DumpKinds(), k) }); len(missing) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s cannot take records of %s; the copy fails if the source holds any\n", dst, strings.Join(missing, ", "))
			}
			p := &progress{w: cmd.ErrOrStderr(), verb: "copied", last: time.Now()}
			h := store.DumpHeader{Engine: src.engine(), Agent: versionString()}
			counts, err := store.CopyStore(ctx, s, d, h, store.ImportOptions{Progress: p.update})
			if err != nil {
				return importFailed(fmt.Errorf("copy %s into %s: %w", src, dst, err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "copied %d records from %s into %s: %v\n", counts.Total(), src, dst, counts)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the store to copy: dir:DATA_DIR or a mongodb:// URI")
	cmd.Flags().StringVar(&to, "to", "", "the empty store to copy into: dir:DATA_DIR or a mongodb:// URI")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
