package pgtest

// Option configures a throwaway server started by Start. Options are ignored
// for an external server (DATABASE_URL).
type Option func(*Server)

// WithSetting adds a server setting (postgres -c name=value), overriding the
// speed-over-safety defaults (fsync, synchronous_commit, full_page_writes off).
//
// Crash tests need WithSetting("synchronous_commit", "on"): with the default
// "off", Stop("immediate") loses commits of the last ~200 ms (still in WAL
// buffers), exactly like a real server configured that way. fsync=off is
// harmless for such tests because the OS page cache survives a process crash.
func WithSetting(name, value string) Option {
	return func(s *Server) { s.settings = append(s.settings, name+"="+value) }
}
