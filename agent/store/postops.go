package store

import "fmt"

// MaxPostOperations bounds a tenant's post-registration commands: each
// becomes an operation on every full registration of every device, so a
// long list multiplies the work of a registration storm.
const MaxPostOperations = 50

// MaxPostOperationLength bounds one post-registration command, in bytes.
const MaxPostOperationLength = 4096

// CheckPostOperations is ErrInvalid for a list of post-registration
// commands that no engine stores: more than MaxPostOperations commands,
// or an empty or overlong one.
func CheckPostOperations(cmds []string) error {
	if len(cmds) > MaxPostOperations {
		return fmt.Errorf("%w: %d post-registration commands, at most %d", ErrInvalid, len(cmds), MaxPostOperations)
	}
	for i, c := range cmds {
		if c == "" || len(c) > MaxPostOperationLength {
			return fmt.Errorf("%w: post-registration command %d is empty or longer than %d bytes", ErrInvalid, i+1, MaxPostOperationLength)
		}
	}
	return nil
}
