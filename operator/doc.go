// Package operator is the taskpilot operator as a callable program: flags, PostgreSQL, the
// manager, and the wiring of runner, journal and controllers. main.go calls Main with the
// built-in task types; other binaries (the chaos run's operator, which adds a witness task type)
// call it with a registry of their own, so every binary is wired exactly the same way.
package operator
