package sqlite

// maxDocument is the most a managed object may hold, its name and
// fragments together: MongoDB's limit of a document (16 MiB), so that
// both engines store the same objects and what one refuses the other
// refuses too. It bounds what one object costs every read of it.
const maxDocument = 16 << 20

// schemaLimits refuses an object beyond maxDocument in the statement that
// writes it, whatever the statement (an insert, or a json_set that grows
// the fragments in place): a trigger aborts it with a message that the
// writer turns into store.ErrInvalid (see conflict).
const schemaLimits = `CREATE TRIGGER managed_objects_size_insert BEFORE INSERT ON managed_objects
	WHEN length(CAST(NEW.name AS BLOB)) + length(CAST(NEW.fragments AS BLOB)) > 16777216
	BEGIN SELECT RAISE(ABORT, 'document too large: a managed object holds at most 16 MiB'); END;
	CREATE TRIGGER managed_objects_size_update BEFORE UPDATE ON managed_objects
	WHEN length(CAST(NEW.name AS BLOB)) + length(CAST(NEW.fragments AS BLOB)) > 16777216
	BEGIN SELECT RAISE(ABORT, 'document too large: a managed object holds at most 16 MiB'); END`
