package store

import (
	"context"
	"log/slog"
	"strings"
)

// secretMarkers are what a FerretDB log record shows when it may hold a
// secret: the names of the fields that keep PSK keys, credential and
// password hashes, and the collection of device registrations, whose
// documents carry the keys (its SQLite table is named after it). FerretDB
// logs whole requests, responses and SQL arguments at debug level, and
// errors may quote documents too.
var secretMarkers = []string{"pskkey", "credentialshash", "passwordhash", "deviceregistrations"}

// omitted replaces the message of a record that may hold a secret.
const omitted = "store log record omitted: it concerns PSK keys, credentials or passwords"

// secretFilter drops the content of every record of the embedded store's
// log that may hold a secret, at every level, keeping only its level and
// time: no key or credential may reach a log, whatever logging is on.
type secretFilter struct {
	h       slog.Handler
	tainted bool // an attribute added with WithAttrs may hold a secret
}

func (f secretFilter) Enabled(ctx context.Context, l slog.Level) bool { return f.h.Enabled(ctx, l) }

func (f secretFilter) Handle(ctx context.Context, r slog.Record) error {
	secret := f.tainted || mentionsSecret(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		secret = secret || attrMentionsSecret(a)
		return !secret
	})
	if !secret {
		return f.h.Handle(ctx, r)
	}
	return f.h.Handle(ctx, slog.NewRecord(r.Time, r.Level, omitted, r.PC))
}

func (f secretFilter) WithAttrs(as []slog.Attr) slog.Handler {
	tainted := f.tainted
	for _, a := range as {
		tainted = tainted || attrMentionsSecret(a)
	}
	if tainted {
		// the attributes themselves must not reach the handler
		return secretFilter{h: f.h, tainted: true}
	}
	return secretFilter{h: f.h.WithAttrs(as)}
}

func (f secretFilter) WithGroup(g string) slog.Handler {
	return secretFilter{h: f.h.WithGroup(g), tainted: f.tainted}
}

func attrMentionsSecret(a slog.Attr) bool {
	if mentionsSecret(a.Key) {
		return true
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			if attrMentionsSecret(g) {
				return true
			}
		}
		return false
	}
	return mentionsSecret(v.String())
}

func mentionsSecret(s string) bool {
	s = strings.ToLower(s)
	for _, m := range secretMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
