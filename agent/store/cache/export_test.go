package cache

// RefuseStale turns the fill check off (false) or on, for a test that
// shows what it prevents; it must not run in parallel with others.
func RefuseStale(on bool) { refuseStale = on }
