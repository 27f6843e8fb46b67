package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// profiles are the CPU profiles taken during one window.
type profiles struct {
	operatorTop   string // go tool pprof -top output (trimmed), "" if not taken
	operatorCum   string
	apiserverTop  string
	operatorFile  string
	apiserverFile string
	err           error
}

// summarize runs go tool pprof on the saved files (after the measured window).
func (p *profiles) summarize() {
	if p.operatorFile != "" {
		p.operatorTop = pprofTop(p.operatorFile, false)
		p.operatorCum = pprofTop(p.operatorFile, true)
	}
	if p.apiserverFile != "" {
		p.apiserverTop = pprofTop(p.apiserverFile, false)
	}
}

// captureProfiles takes CPU profiles of the operator (through --pprof-bind-address) and of
// kube-apiserver (its /debug/pprof, on by default) concurrently, for seconds.
func captureProfiles(ctx context.Context, dir string, op *operatorProc, cs *kubernetes.Clientset, seconds int) profiles {
	var out profiles
	type res struct {
		which string
		file  string
		err   error
	}
	ch := make(chan res, 2)
	n := 0
	if op.pprofURL != "" {
		n++
		go func() {
			f := filepath.Join(dir, "operator.cpu.pprof")
			ch <- res{"operator", f, fetchToFile(ctx, op.pprofURL+"/profile?seconds="+strconv.Itoa(seconds), f)}
		}()
	}
	n++
	go func() {
		f := filepath.Join(dir, "kube-apiserver.cpu.pprof")
		raw, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(seconds)).Timeout(0).DoRaw(ctx)
		if err == nil {
			err = os.WriteFile(f, raw, 0o644)
		}
		ch <- res{"apiserver", f, err}
	}()
	for range n {
		r := <-ch
		if r.err != nil {
			out.err = fmt.Errorf("%s profile: %w", r.which, r.err)
			continue
		}
		switch r.which {
		case "operator":
			out.operatorFile = r.file
		case "apiserver":
			out.apiserverFile = r.file
		}
	}
	return out
}

func fetchToFile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	return f.Close()
}

// pprofTop runs `go tool pprof -top` and keeps the header and the first entries.
func pprofTop(file string, cum bool) string {
	args := []string{"tool", "pprof", "-top", "-nodecount=15"}
	if cum {
		args = append(args, "-cum")
	}
	return pprofRun(append(args, file))
}

// pprofHeapTop is pprofTop of a heap profile's in-use space, by allocation site.
func pprofHeapTop(file string) string {
	return pprofRun([]string{"tool", "pprof", "-top", "-nodecount=20", "-sample_index=inuse_space", file})
}

func pprofRun(args []string) string {
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(go tool pprof failed: %v)", err)
	}
	var keep []string
	started := false
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "flat%") {
			started = true
		}
		if started || strings.HasPrefix(l, "Duration:") || strings.HasPrefix(l, "Showing") {
			keep = append(keep, strings.TrimRight(l, " "))
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}
