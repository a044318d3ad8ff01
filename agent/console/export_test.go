package console

import "io/fs"

// Files are the embedded files, for the tests' checks of them.
func Files() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err)
	}
	return sub
}

// NewFS builds a console over other files.
var NewFS = newFS
