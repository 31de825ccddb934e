package netlink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks compare the link with a model of Lima's shipped forwarder
// on the same socketpair and stream: VM -> daemon ("Up"), daemon -> VM
// ("Down") and a round trip through an echoing daemon ("RoundTrip"). One
// op is one frame. Metrics: frames/s; fwd-cpu-ns/frame and
// fwd-allocs/frame, the forwarder's own user+sys CPU time and heap
// allocations; all-cpu-ns/frame, adding the simulated VM and daemon; drops,
// frames the forwarder dropped (senders are paced so there are none); for
// round trips p50-us and p99-us. B/op and allocs/op are the harness's.

// The forwarder under test runs in a child process (this test binary,
// started by benchChild) so that its CPU time and allocations are measured
// alone: the child snapshots getrusage and the allocation count when the
// parent starts the measured window and again when it ends.
const benchChildEnv = "NETLINK_BENCH_FORWARDER"

// limaModel is the shipped Lima forwarder: two io.Copy goroutines, the
// header and the body written with two writes, the stream read header then
// body.
type limaModel struct {
	vm   *net.UnixConn
	conn net.Conn
	wg   sync.WaitGroup
}

type headerWriter struct{ w io.Writer }

func (h headerWriter) Write(p []byte) (int, error) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := h.w.Write(hdr[:]); err != nil {
		return 0, err
	}
	return h.w.Write(p)
}

type headerReader struct{ r io.Reader }

func (h headerReader) Read(p []byte) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(h.r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > len(p) {
		return 0, errors.New("frame too large")
	}
	return io.ReadFull(h.r, p[:n])
}

// benchChild is the child's main: fd 3 is the host end, the parent drives
// it through stdin ("b" begins the window, EOF ends it) and reads one line
// "cpu_ns mallocs drops" from stdout.
func benchChild(impl, path string) int {
	host := os.NewFile(3, "host")
	var stop func()
	var drops func() uint64
	switch impl {
	case "link", "link-bare":
		// link-bare: learning and the filter off (BenchmarkLearning).
		l, err := New(host, Config{Socket: path, MAC: vmMAC, NoFilter: impl == "link-bare" || os.Getenv("NETLINK_BENCH_NOFILTER") != ""})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		l.learn = impl != "link-bare"
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.Run(ctx); close(done) }()
		stop = func() { cancel(); <-done }
		drops = func() uint64 { return l.Status().Dropped.Total() }
	case "lima":
		pc, err := net.FilePacketConn(host)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		vm := pc.(*net.UnixConn)
		conn, err := net.Dial("unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		m := &limaModel{vm: vm, conn: conn}
		m.wg.Add(2)
		go func() { defer m.wg.Done(); io.Copy(headerWriter{conn}, vm) }()
		go func() { defer m.wg.Done(); io.Copy(vm, headerReader{conn}) }()
		stop = func() { conn.Close(); vm.Close(); m.wg.Wait() }
		drops = func() uint64 { return 0 }
	}
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		stop()
		return 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu0, m0 := cpuTime(), ms.Mallocs
	fmt.Println("ok")
	io.Copy(io.Discard, os.Stdin)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms)
	fmt.Println(cpu.Nanoseconds(), ms.Mallocs-m0, drops())
	stop()
	return 0
}

// benchEnv is a VM socketpair, a daemon listener and a forwarder between.
type benchEnv struct {
	vm     *net.UnixConn // the benchmark's VM end
	daemon *net.UnixConn // the daemon's accepted connection
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

func setup(b *testing.B, impl string) *benchEnv {
	b.Helper()
	vmEnd, hostEnd, err := NewSocketPair()
	if err != nil {
		b.Fatal(err)
	}
	pc, err := net.FilePacketConn(vmEnd)
	vmEnd.Close()
	if err != nil {
		b.Fatal(err)
	}
	path := socketPath(b)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	env := &benchEnv{vm: pc.(*net.UnixConn)}
	env.cmd = exec.Command(os.Args[0], "-test.run=^$")
	env.cmd.Env = append(os.Environ(), benchChildEnv+"="+impl+":"+path)
	env.cmd.ExtraFiles = []*os.File{hostEnd}
	env.cmd.Stderr = os.Stderr
	if env.stdin, err = env.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := env.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	env.stdout = bufio.NewReader(out)
	if err := env.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	hostEnd.Close()
	b.Cleanup(func() {
		env.stdin.Close()
		env.cmd.Wait()
		env.daemon.Close()
		env.vm.Close()
	})
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	if env.daemon, err = ln.AcceptUnix(); err != nil {
		b.Fatal(err)
	}
	return env
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs fn (which moves b.N frames) and reports the metrics.
func measure(b *testing.B, env *benchEnv, fn func()) {
	if _, err := env.stdin.Write([]byte("b")); err != nil {
		b.Fatal(err)
	}
	if line, err := env.stdout.ReadString('\n'); err != nil || line != "ok\n" {
		b.Fatalf("forwarder: %q %v", line, err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	fn()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	env.stdin.Close()
	var fcpu, mallocs, drops uint64
	if _, err := fmt.Fscan(env.stdout, &fcpu, &mallocs, &drops); err != nil {
		b.Fatalf("forwarder result: %v", err)
	}
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(fcpu)/n, "fwd-cpu-ns/frame")
	b.ReportMetric(float64(mallocs)/n, "fwd-allocs/frame")
	b.ReportMetric((float64(fcpu)+float64(cpu.Nanoseconds()))/n, "all-cpu-ns/frame")
	b.ReportMetric(float64(drops), "drops")
}

var benchSizes = []int{64, 1514}

var errFrameMismatch = errors.New("the VM got a frame of the wrong size")

func forEach(b *testing.B, run func(b *testing.B, impl string, size int)) {
	for _, size := range benchSizes {
		for _, impl := range []string{"lima", "link"} {
			b.Run(impl+"/"+strconv.Itoa(size), func(b *testing.B) { run(b, impl, size) })
		}
	}
}

func BenchmarkUp(b *testing.B) { forEach(b, benchUp) }

func benchUp(b *testing.B, impl string, size int) { benchUpFrames(b, impl, benchFrame(size)) }

// benchUpFrames has the VM send frames in a cycle as fast as it can and
// the daemon read them.
func benchUpFrames(b *testing.B, impl string, frames ...[]byte) {
	env := setup(b, impl)
	vm := newBenchVM(env.vm, frames...)
	errc := make(chan error, 1)
	measure(b, env, func() {
		// The VM's sends block while the socketpair is full:
		// nothing is dropped on the way up.
		go func() { errc <- vm.send(b.N) }()
		dec := NewDecoder(0)
		for i := 0; i < b.N; i++ {
			f, err := dec.ReadFrame(env.daemon)
			if want := len(frames[i%len(frames)]); err != nil || len(f) != want {
				b.Fatalf("daemon read %d: %v (%d bytes, want %d)", i, err, len(f), want)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	})
}

// window is how many frames the daemon may have in flight towards the VM
// (well inside the host end's send buffer, so the VM is never overrun).
const window = 512

func BenchmarkDown(b *testing.B) { forEach(b, benchDown) }

func benchDown(b *testing.B, impl string, size int) { benchDownFrames(b, impl, benchFrame(size)) }

// benchDownFrames has the daemon send frames in a cycle, 32 a write and
// paced so that the VM is never overrun, and the VM read them.
func benchDownFrames(b *testing.B, impl string, frames ...[]byte) {
	env := setup(b, impl)
	// The cycle, repeated to a multiple of 32 frames, encoded; off[i] is
	// where frame i starts.
	cycle := frames
	for len(cycle)%32 != 0 {
		cycle = append(cycle, frames...)
	}
	var wire []byte
	off := make([]int, len(cycle)+1)
	for i, f := range cycle {
		off[i] = len(wire)
		wire, _ = AppendFrame(wire, f)
	}
	off[len(cycle)] = len(wire)
	credits := make(chan struct{}, window/32+1)
	for i := 0; i < window/32; i++ {
		credits <- struct{}{}
	}
	vm := newBenchVM(env.vm, frames...)
	errc := make(chan error, 1)
	measure(b, env, func() {
		go func() {
			// Paced by credits from the VM reader, 32 frames a
			// write, so the VM is never overrun.
			for sent := 0; sent < b.N; sent += 32 {
				<-credits
				first := sent % len(cycle)
				n := min(32, b.N-sent)
				if _, err := env.daemon.Write(wire[off[first]:off[first+n]]); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		env.vm.SetReadDeadline(time.Now().Add(time.Minute))
		credited := 0
		for got := 0; got < b.N; {
			n, err := vm.recv(b.N - got)
			if err != nil {
				b.Fatalf("VM read after %d frames: %v", got, err)
			}
			got += n
			for ; got-credited >= 32; credited += 32 {
				credits <- struct{}{}
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkLearning compares the link with learning and the filter on
// ("link") and off ("link-bare", NoFilter and no learning) on a realistic
// mix of frames each way (learnMix: mostly full-size IPv4 TCP, some IPv4
// UDP, IPv6 TCP from or to the guest's known address, a few ARP frames).
// The target: learning and filtering cost at most 5 % of frames/s.
func BenchmarkLearning(b *testing.B) {
	for _, dir := range []struct {
		name string
		run  func(b *testing.B, impl string)
	}{{"up", benchUpMix}, {"down", benchDownMix}} {
		for _, impl := range []string{"link-bare", "link"} {
			b.Run(dir.name+"/"+impl, func(b *testing.B) { dir.run(b, impl) })
		}
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	forEach(b, func(b *testing.B, impl string, size int) {
		env := setup(b, impl)
		go func() { // echo daemon
			dec := NewDecoder(0)
			enc := NewEncoder(env.daemon)
			for {
				f, err := dec.ReadFrame(env.daemon)
				if err != nil {
					return
				}
				if err := enc.WriteFrame(f); err != nil {
					return
				}
			}
		}()
		frame := benchFrame(size)
		buf := make([]byte, MaxFrameSize+1)
		rtts := make([]time.Duration, 0, b.N)
		env.vm.SetReadDeadline(time.Now().Add(time.Minute))
		measure(b, env, func() {
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := env.vm.Write(frame); err != nil {
					b.Fatal(err)
				}
				if n, err := env.vm.Read(buf); err != nil || n != size {
					b.Fatalf("echo %d: %v", i, err)
				}
				rtts = append(rtts, time.Since(t0))
			}
		})
		sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
		b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-us")
		b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-us")
	})
}

// benchFrame is a frame of size bytes from and to the VM's MAC (so the
// link's filter passes it, as it passes a real guest's traffic).
func benchFrame(size int) []byte {
	f := make([]byte, size)
	copy(f, vmMAC)
	copy(f[6:], vmMAC)
	return f
}
