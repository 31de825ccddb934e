package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testbin"
)

// TestMain runs the tests, which build the vmnetbar binary they run as a
// subprocess once (testbin), and checks for leaked goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testbin.Remove()
		os.Exit(code)
	}))
}

// childEnv is the environment of vmnetbar subprocesses. A race-enabled
// binary otherwise sleeps a second at exit, which would hide how fast it
// exits. A failed launch shows no alert (on macOS one waits for a click).
func childEnv() []string {
	env := append(os.Environ(), noAlertEnv+"=1")
	if testbin.Race && os.Getenv("GORACE") == "" {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// result is how a vmnetbar process ended.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs vmnetbar with args to completion (at most 30s).
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return runCLIFiles(t, nil, args...)
}

// runCLIEnv runs vmnetbar with extra environment variables.
func runCLIEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCLIWith(t, nil, env, args...)
}

// runCLIFiles runs vmnetbar with extra inherited files (fd 3 onwards).
func runCLIFiles(t *testing.T, files []*os.File, args ...string) result {
	t.Helper()
	return runCLIWith(t, files, nil, args...)
}

func runCLIWith(t *testing.T, files []*os.File, env []string, args ...string) result {
	t.Helper()
	return runCLIOpts(t, cliOpts{files: files, env: env}, args...)
}

// cliOpts are what a test gives a vmnetbar subprocess besides its
// arguments: extra files (descriptors 3, 4, ...), environment variables
// added to childEnv's, and its standard input and, unless nil, standard
// error (else captured into the result).
type cliOpts struct {
	files         []*os.File
	env           []string
	stdin, stderr *os.File
}

// runCLIOpts runs vmnetbar with args to completion (at most 30s).
func runCLIOpts(t *testing.T, o cliOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Path(t), args...)
	cmd.Env = append(childEnv(), o.env...)
	cmd.ExtraFiles = o.files
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if o.stdin != nil {
		cmd.Stdin = o.stdin
	}
	if o.stderr != nil {
		cmd.Stderr = o.stderr
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vmnetbar %s did not finish in time; stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running vmnetbar %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// proc is a vmnetbar process running in the background.
type proc struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser // nil unless asked for
	stderr *testbin.Buffer
	done   chan struct{}
	code   int
}

// startCLI starts vmnetbar; the test's cleanup kills it if it still runs.
// With pipeStdout the caller reads p.stdout (EOF when the process exits).
func startCLI(t *testing.T, files []*os.File, pipeStdout bool, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(testbin.Path(t), args...), stderr: &testbin.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = childEnv()
	if testbin.Race {
		// Races are found in its standard error when it has ended
		// (below): those inside fyne.io/systray must not fail a test.
		p.cmd.Env = append(p.cmd.Env, testbin.RaceEnv)
	}
	p.cmd.ExtraFiles = files
	p.cmd.Stderr = p.stderr
	// Its own process group, as a terminal gives a job: a test can signal
	// the group the way a terminal hangup or Ctrl-C does.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var w *os.File
	if pipeStdout {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdout, w = r, pw
		p.cmd.Stdout = w
		t.Cleanup(func() { r.Close() })
	}
	err := p.cmd.Start()
	if w != nil {
		w.Close() // the child holds the write end now
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		testbin.CheckRaces(t, p.stderr.String())
	})
	return p
}

// signal sends sig and returns how long the process took to exit (at most
// 10s, after which the test fails) and its exit code.
func (p *proc) signal(t *testing.T, sig syscall.Signal) (time.Duration, int) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	took := p.wait(t, 10*time.Second)
	return took, p.code
}

// signalGroup sends sig to the process's whole process group, as a
// terminal does on a hangup or Ctrl-C.
func (p *proc) signalGroup(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal %v to the process group: %v", sig, err)
	}
}

// running reports whether the process still runs.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to timeout for the process to exit and returns how long it
// took.
func (p *proc) wait(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(timeout):
		t.Fatalf("vmnetbar %s still running after %v; stderr:\n%s", strings.Join(p.cmd.Args[1:], " "), timeout, p.stderr.String())
		return 0
	}
}

// shortTempDir returns a temporary directory short enough for socket paths.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vnb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
