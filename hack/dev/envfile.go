package main

import (
	"bufio"
	"bytes"
	"os"
	"strings"
)

// writtenDatabaseURL returns the DATABASE_URL that an earlier run exported in envFile (see
// envExports), or "" if there is none. After `source bin/dev/env` that URL is in the
// environment, pointing at the local server this tool starts itself; it must not be taken for
// an existing database the user wants instead.
func writtenDatabaseURL(envFile string) string {
	b, err := os.ReadFile(envFile)
	if err != nil {
		return ""
	}
	const prefix = "export DATABASE_URL="
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return shellUnquote(v)
		}
	}
	return ""
}

// shellUnquote undoes shellQuote (single quotes, with each quote inside written as four
// characters: quote, backslash, quote, quote).
func shellUnquote(s string) string {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return s
	}
	return strings.ReplaceAll(s[1:len(s)-1], `'\''`, `'`)
}
