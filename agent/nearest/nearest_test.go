package nearest

import "testing"

func TestWord(t *testing.T) {
	known := []string{"address", "args", "name", "minBackoff", "maxBackoff"}
	for _, tc := range []struct{ w, want string }{
		{"adress", "address"},
		{"ADDRESS", "address"},
		{"nmae", "name"}, // a transposition is two edits
		{"minbackof", "minBackoff"},
		{"colour", ""},
		{"", ""},
		{"averyveryverylongword", ""},
		{"arg", "args"},
	} {
		if got := Word(tc.w, known); got != tc.want {
			t.Errorf("Word(%q) = %q, want %q", tc.w, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"kitten", "sitting", 9, 3},
		{"", "abc", 9, 3},
		{"same", "same", 3, 0},
		{"kitten", "sitting", 2, 2}, // capped at the limit
		{"a", "abcdefgh", 3, 3},
	} {
		if got := distance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("distance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}
