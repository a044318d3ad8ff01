package mongo

// PasswordChecks returns how many logins compared a password with bcrypt.
func PasswordChecks() int64 { return passwordChecks.Load() }
