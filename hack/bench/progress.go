package main

import (
	"fmt"
	"os"
	"time"
)

// progressf rewrites the terminal's progress line (stderr).
func progressf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "\r\033[K%s %s", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// logf prints a line that stays (results, notes).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "\r\033[K%s\n", fmt.Sprintf(format, args...))
}
