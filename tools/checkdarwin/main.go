// Command checkdarwin type-checks every package of a Go module, test files
// included, as it would be compiled for macOS (GOOS=darwin), on any host.
//
// The macOS code of vmnetbar needs cgo and the macOS SDK to build, so it
// cannot be compiled on Linux. It can be type-checked: checkdarwin asks
// `go list -deps -test -json ./...` (GOOS=darwin, CGO_ENABLED=1) for the build
// graph of each architecture and runs go/types over every listed package in
// dependency order, with cgo's `import "C"` faked. Errors are reported only
// for the module's own packages (third-party cgo packages such as vz show
// spurious errors under a fake "C"); dependencies are checked without their
// function bodies, which is all their importers need.
//
// Usage:
//
//	checkdarwin [-dir DIR] [-arch arm64,amd64] [-test=false]
//
// It prints file:line:col: message for every error and exits 1, or prints a
// one-line summary and exits 0. Bad flags exit 2.
//
// This command may import only the standard library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// darwinArchs are the GOARCH values Go supports for GOOS=darwin.
var darwinArchs = map[string]bool{"arm64": true, "amd64": true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("checkdarwin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory of the module to check")
	archList := fs.String("arch", "arm64,amd64", "comma-separated darwin GOARCH values to check")
	tests := fs.Bool("test", true, "also check _test.go files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: checkdarwin [-dir DIR] [-arch arm64,amd64] [-test=false]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "checkdarwin: unexpected argument %q; use -dir to choose the module\n", fs.Arg(0))
		return exitUsage
	}
	archs, err := parseArchs(*archList)
	if err != nil {
		fmt.Fprintf(stderr, "checkdarwin: %v\n", err)
		return exitUsage
	}

	start := time.Now()
	res, err := check(ctx, options{Dir: *dir, Archs: archs, Tests: *tests})
	if err != nil {
		fmt.Fprintf(stderr, "checkdarwin: %v\n", err)
		return exitFailure
	}
	targets := make([]string, len(archs))
	for i, a := range archs {
		targets[i] = "darwin/" + a
	}
	if len(res.Problems) > 0 {
		for _, p := range res.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		fmt.Fprintf(stderr, "checkdarwin: %d error(s) in %s for %s\n",
			len(res.Problems), res.Module, strings.Join(targets, ", "))
		return exitFailure
	}
	fmt.Fprintf(stdout, "checkdarwin: %d packages of %s type-check for %s (%d packages checked in %.1fs)\n",
		res.ModulePackages, res.Module, strings.Join(targets, ", "), res.Checked,
		time.Since(start).Seconds())
	return exitOK
}

// parseArchs validates a comma-separated GOARCH list.
func parseArchs(s string) ([]string, error) {
	var archs []string
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !darwinArchs[a] {
			return nil, fmt.Errorf("-arch: %q is not a darwin architecture; use arm64 and/or amd64", a)
		}
		if !seen[a] {
			seen[a] = true
			archs = append(archs, a)
		}
	}
	if len(archs) == 0 {
		return nil, errors.New("-arch: empty list; use arm64 and/or amd64")
	}
	return archs, nil
}
