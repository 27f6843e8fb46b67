// Package freeport picks loopback ports for servers that tests start as separate processes.
//
// Asking the kernel for port 0 and passing the number on is racy: the
// kernel hands out ports from the ephemeral range (32768–60999 on Linux), the same range it
// uses for the local end of every outgoing connection, so between closing the probe listener
// and the child binding it, one of the hundreds of connections a test makes (to PostgreSQL, to
// the API server) can take the port. Ports below the ephemeral range are never used for
// outgoing connections; picking one at random there and checking that it can be bound leaves
// only the much rarer race with another test's listener doing the same.
package freeport

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
)

// low and high bound the range ports are picked from: above the registered services most
// machines run, below the ephemeral range.
const low, high = 20000, 32768

// Pick returns a loopback TCP port that was free a moment ago and is outside the ephemeral range.
func Pick() (int, error) {
	var last error
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(high-low))
		if err != nil {
			return 0, fmt.Errorf("freeport: %w", err)
		}
		port := low + int(n.Int64())
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			last = err
			continue
		}
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("freeport: close probe listener: %w", err)
		}
		return port, nil
	}
	return 0, fmt.Errorf("freeport: no free port in %d-%d after 100 tries: %w", low, high-1, errors.Join(last))
}
