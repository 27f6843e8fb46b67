package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Main is the body of a TestMain: it starts a server, stores it in *srv, runs
// the tests, and closes the server whatever happened. It returns the exit
// code for os.Exit, so callers can add checks (goleak) after the server is
// gone:
//
//	func TestMain(m *testing.M) {
//		code := pgtest.Main(m, &srv)
//		os.Exit(code)
//	}
func Main(m *testing.M, srv **Server) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL: %v\n", err)
		return 1
	}
	*srv = s
	code := func() int {
		defer func() {
			if err := s.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: close: %v\n", err)
			}
		}()
		return m.Run()
	}()
	return code
}
