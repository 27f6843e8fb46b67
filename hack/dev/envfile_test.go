package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
)

func TestWrittenDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "env")
	if got := writtenDatabaseURL(env); got != "" {
		t.Fatalf("no env file: got %q", got)
	}
	url := "postgres://postgres@127.0.0.1:15432/taskpilot?sslmode=disable&application_name=it's"
	d := &devEnv{envFile: env, kubeconfig: filepath.Join(dir, "kubeconfig"), postgres: &postgres{url: "postgres://taskpilot@127.0.0.1:15432/taskpilot", readerURL: url}}
	if err := os.WriteFile(env, []byte(d.envExports()), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := writtenDatabaseURL(env); got != url {
		t.Fatalf("writtenDatabaseURL = %q, want the reader URL envExports wrote, %q", got, url)
	}
}

// TestOwnDatabaseURLStartsPostgres is the trap of the README tour: after `source bin/dev/env`,
// DATABASE_URL is the dev database itself, and `make dev` must start it rather than refuse.
func TestOwnDatabaseURLStartsPostgres(t *testing.T) {
	dir := t.TempDir()
	own := "postgres://postgres@127.0.0.1:15432/taskpilot?sslmode=disable"
	d := &devEnv{envFile: filepath.Join(dir, "env"), kubeconfig: filepath.Join(dir, "kubeconfig"), postgres: &postgres{url: "postgres://taskpilot@127.0.0.1:15432/taskpilot", readerURL: own}}
	if err := os.WriteFile(d.envFile, []byte(d.envExports()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env, want string
	}{
		{own, ""}, // ours: start the local server
		{"postgres://db.example/x", "postgres://db.example/x"}, // someone else's: use it
		{"", ""},
	} {
		t.Setenv("DATABASE_URL", c.env)
		d := &devEnv{cfg: config{databaseURL: c.env}, envFile: d.envFile, log: logr.Discard()}
		if err := d.forgetOwnDatabaseURL(); err != nil {
			t.Fatal(err)
		}
		if d.cfg.databaseURL != c.want {
			t.Errorf("DATABASE_URL=%q: databaseURL = %q, want %q", c.env, d.cfg.databaseURL, c.want)
		}
		// pgtest reads the variable itself: ours must be gone from the environment too.
		if got := os.Getenv("DATABASE_URL"); got != c.want {
			t.Errorf("DATABASE_URL=%q: environment has %q afterwards, want %q", c.env, got, c.want)
		}
	}
}
