// Package version says which taskpilot a binary is: the one version string that `taskpilot
// version`, the taskpilot_build_info metric, the image's labels and the chart's appVersion
// show.
//
// A release build stamps it (make build, make image and make release pass
// -ldflags "-X github.com/taskpilot/taskpilot/internal/version.stamped=vX.Y.Z -X
// github.com/taskpilot/taskpilot/internal/version.stampedRevision=<commit>"). Without a stamp
// it comes from what the Go toolchain records in every binary (runtime/debug.ReadBuildInfo):
// the main module's version (a tag, or a pseudo-version of the commit, "+dirty" when the tree
// had changes) and the VCS revision. A team's own operator is its own module: its Version is
// its own, and Taskpilot says which taskpilot it was built with.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-ldflags -X) in release builds, never written at run time.
var (
	stamped         string //nolint:gochecknoglobals // written by the linker only (-ldflags -X)
	stampedRevision string //nolint:gochecknoglobals // written by the linker only (-ldflags -X)
)

// module is taskpilot's module path.
const module = "github.com/taskpilot/taskpilot"

// Devel is the version of a binary built without a version: from a checkout without tags or
// VCS information (go run, a copy of the source without .git).
const Devel = "devel"

// Info is what a binary knows of its build.
type Info struct {
	// Version is the binary's version: the stamp, else its main module's version, else Devel.
	Version string `json:"version"`
	// Revision is the commit it was built from ("" when unknown); Modified says the tree had
	// uncommitted changes.
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// Taskpilot is the version of taskpilot in it: Version for taskpilot's own binary, the
	// required module version for a team's operator.
	Taskpilot string `json:"taskpilot"`
	// GoVersion is the toolchain that built it; Platform its GOOS/GOARCH.
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get reads the binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(bi, stamped, stampedRevision)
}

// from is Get without the process: what a build with bi and the stamps says.
func from(bi *debug.BuildInfo, stamp, stampRevision string) Info {
	info := Info{Version: Devel, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if stamp != "" {
		info.Version = stamp
	}
	if stampRevision != "" {
		info.Revision, info.Modified = stampRevision, false
	}
	info.Taskpilot = info.Version
	if bi != nil && bi.Main.Path != module {
		info.Taskpilot = Devel
		for _, d := range bi.Deps {
			if d.Path == module {
				info.Taskpilot = d.Version
				if d.Replace != nil {
					info.Taskpilot = strings.TrimSpace("replaced by " + d.Replace.Path + " " + d.Replace.Version)
				}
			}
		}
	}
	return info
}

// String is the one line `taskpilot version` prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", i.Version)
	if i.Revision != "" {
		fmt.Fprintf(&b, " (revision %s", short(i.Revision))
		if i.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	if i.Taskpilot != i.Version {
		fmt.Fprintf(&b, ", taskpilot %s", i.Taskpilot)
	}
	fmt.Fprintf(&b, ", %s, %s", i.GoVersion, i.Platform)
	return b.String()
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
