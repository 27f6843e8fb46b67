// Package harness holds what the measuring harnesses (hack/bench, hack/chaos) share: the
// operator binary run as a child process (free ports, readiness, signals), a process's memory,
// and a description of the machine for their reports.
package harness
