package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// options selects what check type-checks.
type options struct {
	Dir   string   // module directory
	Archs []string // darwin GOARCH values
	Tests bool     // also check the packages' _test.go files
	// Env is added to the environment of the go command (for example
	// GOFLAGS=-mod=mod).
	Env []string
}

// result is the outcome of check.
type result struct {
	Module         string    // path of the checked module
	ModulePackages int       // packages of the module (largest over the archs)
	Checked        int       // packages type-checked, all archs together
	Problems       []problem // errors in the module's packages, sorted
}

// problem is one error in one of the module's packages.
type problem struct {
	Pos   token.Position // Filename is relative to the module directory when inside it
	Msg   string
	Archs []string // the darwin GOARCH values that show it
}

// key identifies a problem regardless of arch.
func (p problem) key() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.Pos.Filename, p.Pos.Line, p.Pos.Column, p.Msg)
}

func (p problem) String() string {
	pos := p.Pos.Filename
	if p.Pos.Line > 0 {
		pos = fmt.Sprintf("%s:%d", pos, p.Pos.Line)
		if p.Pos.Column > 0 {
			pos = fmt.Sprintf("%s:%d", pos, p.Pos.Column)
		}
	}
	targets := make([]string, len(p.Archs))
	for i, a := range p.Archs {
		targets[i] = "darwin/" + a
	}
	return fmt.Sprintf("%s: %s [%s]", pos, p.Msg, strings.Join(targets, " "))
}

// listPackage is the part of `go list -json` output check uses.
type listPackage struct {
	ImportPath string
	Dir        string
	Name       string
	ForTest    string
	GoFiles    []string
	CgoFiles   []string
	ImportMap  map[string]string
	Imports    []string
	Standard   bool
	Module     *struct {
		Path      string
		Main      bool
		GoVersion string
	}
	Error *struct {
		Pos string
		Err string
	}
}

func (p *listPackage) inMainModule() bool { return p.Module != nil && p.Module.Main }

// isTestMain reports whether p is the generated main package of a test
// binary (its only file lives in the build cache).
func (p *listPackage) isTestMain() bool {
	return p.ForTest == "" && p.Name == "main" && strings.HasSuffix(p.ImportPath, ".test") &&
		len(p.GoFiles) > 0 && filepath.IsAbs(p.GoFiles[0])
}

// archResult is what one architecture contributes to a result.
type archResult struct {
	module   string
	packages int
	checked  int
	problems []problem
}

// check type-checks the module in opts.Dir for every arch in opts.Archs.
// It returns an error only when the check itself could not run (no go
// command, no module); errors in the code are returned as Problems.
func check(ctx context.Context, opts options) (result, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return result{}, fmt.Errorf("-dir %q: %w", opts.Dir, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return result{}, fmt.Errorf("-dir %q is not a directory; point it at the module root", opts.Dir)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The archs run side by side; one semaphore bounds the type-checking
	// work of all of them to the number of CPUs.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	results := make([]archResult, len(opts.Archs))
	errs := make([]error, len(opts.Archs))
	var wg sync.WaitGroup
	for i, arch := range opts.Archs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = checkArch(ctx, dir, arch, opts.Tests, opts.Env, sem)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}

	var res result
	merged := map[string]*problem{}
	for i, ar := range results {
		res.Module = ar.module
		res.ModulePackages = max(res.ModulePackages, ar.packages)
		res.Checked += ar.checked
		for _, p := range ar.problems {
			key := p.key()
			if m, ok := merged[key]; ok {
				m.Archs = append(m.Archs, opts.Archs[i])
				continue
			}
			p.Archs = []string{opts.Archs[i]}
			merged[key] = &p
		}
	}
	for _, p := range merged {
		res.Problems = append(res.Problems, *p)
	}
	sort.Slice(res.Problems, func(i, j int) bool {
		a, b := res.Problems[i].Pos, res.Problems[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return res.Problems[i].Msg < res.Problems[j].Msg
	})
	return res, nil
}

// goList runs `go list -e -deps -json ./...` for darwin/arch in dir, with
// -test when tests is set. The packages come in dependency order (every
// package after its imports); with -test, a package's test variant
// "p [p.test]" lists its _test.go files among its GoFiles.
func goList(ctx context.Context, dir, arch string, tests bool, env []string) ([]*listPackage, error) {
	args := []string{"list", "-e", "-deps",
		"-json=ImportPath,Dir,Name,ForTest,GoFiles,CgoFiles,ImportMap,Imports,Standard,Module,Error"}
	if tests {
		args = append(args, "-test")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./...")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+arch, "CGO_ENABLED=1")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list for darwin/%s in %s: %w: %s", arch, dir, err,
			strings.TrimSpace(stderr.String()))
	}
	var pkgs []*listPackage
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listPackage)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list for darwin/%s: decoding its output: %w", arch, err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// node is one package of one arch's build graph.
type node struct {
	lp   *listPackage
	done chan struct{} // closed once pkg is set
	pkg  *types.Package
}

// checkArch type-checks the module's build graph for darwin/arch.
func checkArch(ctx context.Context, dir, arch string, tests bool, env []string, sem chan struct{}) (archResult, error) {
	pkgs, err := goList(ctx, dir, arch, tests, env)
	if err != nil {
		return archResult{}, err
	}
	sizes := types.SizesFor("gc", arch)
	if sizes == nil {
		return archResult{}, fmt.Errorf("no type sizes for gc/%s", arch)
	}

	var res archResult
	nodes := make(map[string]*node, len(pkgs))
	for _, lp := range pkgs {
		nodes[lp.ImportPath] = &node{lp: lp, done: make(chan struct{})}
		if lp.inMainModule() {
			res.module = lp.Module.Path
			if lp.ForTest == "" && !lp.isTestMain() {
				res.packages++
			}
		}
	}
	if res.module == "" {
		return archResult{}, fmt.Errorf("go list for darwin/%s in %s listed no package of the main module", arch, dir)
	}

	var (
		mu       sync.Mutex
		problems []problem
	)
	report := func(ps []problem) {
		mu.Lock()
		problems = append(problems, ps...)
		mu.Unlock()
	}
	fset := token.NewFileSet()
	tctx := types.NewContext()

	// Every package waits for its imports, then takes a semaphore slot.
	// go list never reports import cycles as edges, so this terminates.
	var wg sync.WaitGroup
	checked := 0
	for _, lp := range pkgs {
		n := nodes[lp.ImportPath]
		if lp.Error != nil {
			// A broken dependency breaks the build of whatever imports
			// it, so list errors are reported wherever they are.
			report([]problem{listProblem(dir, lp)})
		}
		if lp.ImportPath == "unsafe" {
			n.pkg = types.Unsafe
			close(n.done)
			continue
		}
		if lp.isTestMain() {
			// Generated by go test; nothing imports it.
			close(n.done)
			continue
		}
		checked++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(n.done)
			deps := map[string]*types.Package{}
			for _, imp := range lp.Imports {
				if d, ok := nodes[imp]; ok {
					select {
					case <-d.done:
						deps[imp] = d.pkg
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			var ps []problem
			n.pkg, ps = checkPackage(fset, tctx, sizes, dir, lp, deps)
			if lp.inMainModule() {
				report(ps)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return archResult{}, err
	}
	res.checked = checked
	// A package and its test variant share files: report each error once.
	seen := map[string]bool{}
	for _, p := range problems {
		key := p.key()
		if !seen[key] {
			seen[key] = true
			res.problems = append(res.problems, p)
		}
	}
	return res, nil
}

// checkPackage parses and type-checks one package against its already
// checked imports. Function bodies are checked only in the main module.
func checkPackage(fset *token.FileSet, tctx *types.Context, sizes types.Sizes, dir string,
	lp *listPackage, deps map[string]*types.Package) (*types.Package, []problem) {
	main := lp.inMainModule()
	var ps []problem
	add := func(pos token.Position, msg string) {
		pos.Filename = relTo(dir, pos.Filename)
		ps = append(ps, problem{Pos: pos, Msg: msg})
	}

	mode := parser.SkipObjectResolution
	if main {
		mode |= parser.ParseComments
	}
	var files []*ast.File
	for _, name := range append(append([]string(nil), lp.GoFiles...), lp.CgoFiles...) {
		f, err := parser.ParseFile(fset, filepath.Join(lp.Dir, name), nil, mode)
		if err != nil {
			var list scanner.ErrorList
			if errors.As(err, &list) {
				for _, e := range list {
					add(e.Pos, e.Msg)
				}
			} else {
				add(token.Position{Filename: filepath.Join(lp.Dir, name)}, err.Error())
			}
		}
		if f != nil {
			files = append(files, f)
		}
	}

	conf := types.Config{
		Context:          tctx,
		IgnoreFuncBodies: !main,
		FakeImportC:      true,
		Sizes:            sizes,
		Importer:         importer{lp: lp, deps: deps},
		Error: func(err error) {
			if !main {
				return
			}
			var te types.Error
			if !errors.As(err, &te) {
				add(token.Position{Filename: lp.Dir}, err.Error())
				return
			}
			if strings.HasPrefix(te.Msg, "\t") && len(ps) > 0 {
				// A continuation line of the previous error.
				ps[len(ps)-1].Msg += "\n" + te.Msg
				return
			}
			add(te.Fset.Position(te.Pos), te.Msg)
		},
	}
	if main && lp.Module.GoVersion != "" {
		conf.GoVersion = "go" + lp.Module.GoVersion
	}
	pkg, _ := conf.Check(lp.ImportPath, fset, files, nil) // errors went to conf.Error
	return pkg, ps
}

// importer resolves one package's imports from its checked dependencies.
type importer struct {
	lp   *listPackage
	deps map[string]*types.Package
}

func (im importer) Import(path string) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if p, ok := im.lp.ImportMap[path]; ok {
		path = p
	}
	if pkg := im.deps[path]; pkg != nil {
		return pkg, nil
	}
	return nil, fmt.Errorf("package %s is not in the darwin build graph of %s", path, im.lp.ImportPath)
}

// listProblem turns a go list error into a problem.
func listProblem(dir string, lp *listPackage) problem {
	pos := token.Position{Filename: lp.Dir}
	if lp.Error.Pos != "" {
		pos = parsePos(lp.Error.Pos)
	}
	if pos.Filename == "" {
		pos.Filename = lp.ImportPath
	}
	pos.Filename = relTo(dir, pos.Filename)
	return problem{Pos: pos, Msg: strings.TrimSpace(lp.Error.Err)}
}

// parsePos parses go list's "file:line:col" positions.
func parsePos(s string) token.Position {
	var pos token.Position
	parts := strings.Split(s, ":")
	// Take line and column from the end so that paths may contain ':'.
	for i := 0; i < 2 && len(parts) > 1; i++ {
		var v int
		if _, err := fmt.Sscanf(parts[len(parts)-1], "%d", &v); err != nil {
			break
		}
		pos.Column, pos.Line = pos.Line, v
		parts = parts[:len(parts)-1]
	}
	pos.Filename = strings.Join(parts, ":")
	return pos
}

// relTo makes path relative to dir when it lies inside dir.
func relTo(dir, path string) string {
	if !filepath.IsAbs(path) {
		return path
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}
