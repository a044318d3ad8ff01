package store

import "time"

// Measurement is one measurement in Cumulocity's shape: Fragments maps a
// fragment (c8y_Temperature) to its series (T) and each series to
// {"value": 21.5, "unit": "C"}; other members are kept as they are.
type Measurement struct {
	ID        string
	Source    string
	Type      string
	Time      time.Time
	Fragments map[string]any
}

// SeriesValue returns the Cumulocity series member {"value", "unit"}.
func SeriesValue(value float64, unit string) map[string]any {
	if unit == "" {
		return map[string]any{"value": value}
	}
	return map[string]any{"value": value, "unit": unit}
}

// MeasurementFilter selects measurements; zero fields match all. DateFrom
// is inclusive, DateTo exclusive.
type MeasurementFilter struct {
	Source, Type        string
	ValueFragmentType   string
	ValueFragmentSeries string
	DateFrom, DateTo    time.Time
	// Revert lists the newest first; by default the oldest come first.
	Revert bool
	Page   Page
}
