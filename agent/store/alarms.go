package store

import (
	"fmt"
	"time"
)

// Alarm statuses and severities.
const (
	AlarmActive       = "ACTIVE"
	AlarmAcknowledged = "ACKNOWLEDGED"
	AlarmCleared      = "CLEARED"

	SeverityCritical = "CRITICAL"
	SeverityMajor    = "MAJOR"
	SeverityMinor    = "MINOR"
	SeverityWarning  = "WARNING"
)

// Alarm is a condition on a source that needs attention. At most one
// alarm per source and type is open (not CLEARED); raising it again
// increments Count.
type Alarm struct {
	ID                  string
	Source              string
	Type                string
	Text                string
	Severity            string
	Status              string
	Count               int64
	Time                time.Time
	FirstOccurrenceTime time.Time
	CreationTime        time.Time
	Fragments           map[string]any
}

// CheckRaise is what every engine's RaiseAlarm checks of an alarm before
// it stores it: a source and a type, and a severity of the four, MAJOR
// when none is given (set in a).
func CheckRaise(a *Alarm) error {
	if a.Source == "" || a.Type == "" {
		return fmt.Errorf("%w: alarm needs source and type", ErrInvalid)
	}
	if a.Severity == "" {
		a.Severity = SeverityMajor
	}
	if !ValidSeverity(a.Severity) {
		return fmt.Errorf("%w: alarm severity %q: use CRITICAL, MAJOR, MINOR or WARNING", ErrInvalid, a.Severity)
	}
	return nil
}

// ValidSeverity reports whether s is one of the four severities.
func ValidSeverity(s string) bool {
	switch s {
	case SeverityCritical, SeverityMajor, SeverityMinor, SeverityWarning:
		return true
	}
	return false
}

// ValidAlarmStatus reports whether s is one of the three statuses.
func ValidAlarmStatus(s string) bool {
	switch s {
	case AlarmActive, AlarmAcknowledged, AlarmCleared:
		return true
	}
	return false
}

// AlarmUpdate changes an alarm; empty fields stay as they are.
type AlarmUpdate struct {
	Status   string
	Severity string
	Text     string
}

// AlarmFilter selects alarms; zero fields match all.
type AlarmFilter struct {
	Source, Type     string
	Status           []string // any of
	Severity         string
	DateFrom, DateTo time.Time
	Revert           bool // oldest first; by default the newest come first
	Page             Page
}
