package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestWhatABuildSays(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name                 string
		bi                   *debug.BuildInfo
		stamp, stampRevision string
		want                 Info
	}{{
		name: "no build information",
		want: Info{Version: Devel, Taskpilot: Devel},
	}, {
		name: "a checkout without tags",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: module, Version: "(devel)"}, Settings: vcs},
		want: Info{Version: Devel, Revision: "0123456789abcdef0123", Modified: true, Taskpilot: Devel, GoVersion: "go1.26.0"},
	}, {
		name: "a tagged module (go install ...@v0.1.0)",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: module, Version: "v0.1.0"}},
		want: Info{Version: "v0.1.0", Taskpilot: "v0.1.0", GoVersion: "go1.26.0"},
	}, {
		name: "a release build: the stamps win",
		bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: module, Version: "v0.0.0-20261206-0123456789ab+dirty"},
			Settings: vcs},
		stamp: "v0.2.0", stampRevision: "fedcba",
		want: Info{Version: "v0.2.0", Revision: "fedcba", Taskpilot: "v0.2.0", GoVersion: "go1.26.0"},
	}, {
		name: "a team's operator says which taskpilot it runs",
		bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "example.com/primes", Version: "v1.4.0"},
			Deps: []*debug.Module{{Path: module, Version: "v0.1.0"}}},
		want: Info{Version: "v1.4.0", Taskpilot: "v0.1.0", GoVersion: "go1.26.0"},
	}, {
		name: "built against a checkout",
		bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "example.com/primes", Version: "(devel)"},
			Deps: []*debug.Module{{Path: module, Version: "v0.0.0", Replace: &debug.Module{Path: "../taskpilot"}}}},
		want: Info{Version: Devel, Taskpilot: "replaced by ../taskpilot", GoVersion: "go1.26.0"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := from(tt.bi, tt.stamp, tt.stampRevision)
			got.Platform = ""
			if tt.bi == nil {
				got.GoVersion = ""
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestTheLineSaysItAll(t *testing.T) {
	line := Info{Version: "v1.4.0", Revision: "0123456789abcdef", Modified: true, Taskpilot: "v0.1.0",
		GoVersion: "go1.26.0", Platform: "linux/arm64"}.String()
	if want := "v1.4.0 (revision 0123456789ab, modified), taskpilot v0.1.0, go1.26.0, linux/arm64"; line != want {
		t.Errorf("got %q, want %q", line, want)
	}
	if line := (Info{Version: "v0.1.0", Taskpilot: "v0.1.0", GoVersion: "go1.26.0", Platform: "linux/amd64"}).String(); strings.Contains(line, "taskpilot") {
		t.Errorf("taskpilot's own binary names its version once: %q", line)
	}
}
