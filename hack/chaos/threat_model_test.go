package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskpilot/taskpilot/test/kubetest"
)

// TestTheThreatModelNamesTestsThatExist: every boundary in the threat model is shown by a test
// it names; a renamed or deleted test must not leave the report pointing at nothing.
func TestTheThreatModelNamesTestsThatExist(t *testing.T) {
	named := regexp.MustCompile("`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(threatModel, -1)
	require.NotEmpty(t, named)
	defined := map[string]bool{}
	root := kubetest.RepoRoot()
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(t \*testing\.T\)`)
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return nil
	}))
	for _, m := range named {
		require.True(t, defined[m[1]], "the threat model names %s, which no test file defines", m[1])
	}
}
