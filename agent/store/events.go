package store

import "time"

// Event is something that happened on a source (a managed object).
type Event struct {
	ID           string
	Source       string
	Type         string
	Text         string
	Time         time.Time
	CreationTime time.Time
	Fragments    map[string]any
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// EventFilter selects events; zero fields match all. DateFrom is
// inclusive, DateTo exclusive.
type EventFilter struct {
	Source, Type     string
	DateFrom, DateTo time.Time
	// Revert lists the oldest first; by default the newest come first.
	Revert bool
	Page   Page
}
