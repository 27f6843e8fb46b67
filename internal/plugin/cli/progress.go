package cli

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/taskpilot/taskpilot/internal/plugin/bulk"
)

// progressLine is one self-overwriting status line on a terminal; on anything else (a pipe,
// a file, a test) it writes nothing, so output stays clean for scripts.
type progressLine struct {
	w    io.Writer
	verb bulk.Verb
	on   bool
}

func newProgressLine(w io.Writer, verb bulk.Verb) *progressLine {
	f, isFile := w.(*os.File)
	return &progressLine{w: w, verb: verb, on: isFile && term.IsTerminal(int(f.Fd()))}
}

// update implements bulk.Options.Progress.
func (p *progressLine) update(done, failed, total int) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K%s: %d/%d tasks, %d failed", p.verb, done, total, failed)
	}
}

// waiting says that --wait is watching n tasks.
func (p *progressLine) waiting(n int) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[Kwaiting for %d tasks…", n)
	}
}

// done clears the line.
func (p *progressLine) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
