// Package pgtest gives tests a real, throwaway PostgreSQL server.
//
// A test binary starts one server in TestMain (see Main), and each test asks
// it for a fresh database with NewDatabase, so tests never share rows and
// need no cleanup code of their own. The server runs from a temporary
// directory under os.TempDir with fsync disabled: it is fast and disposable,
// never a place for data worth keeping.
//
// When DATABASE_URL is set, that server is used instead and nothing is
// started; Stop and Restart then return ErrExternalServer so outage tests can
// skip themselves.
//
// WithDataDir turns the server into a persistent one for development tools
// (hack/dev): the cluster lives in a directory the caller keeps, runs with
// durable settings, and Close shuts it down cleanly without deleting anything.
//
// Process hygiene: the postmaster is a direct child of the test binary,
// started with a parent-death signal (SIGQUIT, i.e. immediate shutdown), so
// it dies with the test binary even when `go test -timeout` kills it before
// Close runs. As a second line of defence, Start removes the directories of
// earlier servers whose owning test process is gone, stopping any postmaster
// still running there.
package pgtest
