package model

import (
	"os"
	"path/filepath"
	"testing"
)

// findRegistryDir finds the OMA registry files, kept beside the repository
// in shared/lwm2m-registry, by walking up from the package directory.
func findRegistryDir() (string, bool) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", false
	}
	for {
		cand := filepath.Join(dir, "shared", "lwm2m-registry")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// registryDir is findRegistryDir for tests, which skip when the files are
// absent (a bare checkout).
func registryDir(t testing.TB) string {
	t.Helper()
	dir, ok := findRegistryDir()
	if !ok {
		t.Skip("shared/lwm2m-registry not found above the package directory")
	}
	return dir
}
