package pgtext

import (
	"strings"
	"unicode/utf8"
)

// Text returns s as PostgreSQL's text types accept it: NUL characters removed, invalid UTF-8
// replaced by U+FFFD, and at most maxChars characters (char_length), the last one an ellipsis
// when something was cut.
func Text(s string, maxChars int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if maxChars <= 0 || utf8.RuneCountInString(s) <= maxChars {
		return s
	}
	n := 0
	for i := range s {
		if n == maxChars-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
