package control

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
)

// silentServer accepts connections on path and never answers.
func silentServer(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

func TestClientSaysServerDidNotAnswer(t *testing.T) {
	path := shortTempDir(t) + "/c.sock"
	silentServer(t, path)
	c := NewClient(path)
	for name, call := range map[string]func(context.Context) error{
		"overview":  func(ctx context.Context) error { _, err := c.Overview(ctx); return err },
		"vm":        func(ctx context.Context) error { _, err := c.VM(ctx, "dev"); return err },
		"only vm":   func(ctx context.Context) error { _, err := c.VM(ctx, ""); return err },
		"start":     func(ctx context.Context) error { return c.Start(ctx, "dev") },
		"stop":      func(ctx context.Context) error { return c.Stop(ctx, "") },
		"reconnect": func(ctx context.Context) error { return c.Reconnect(ctx, "dev") },
		"watch":     func(ctx context.Context) error { return c.Watch(ctx, func(model.Overview) error { return nil }) },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := call(ctx)
		cancel()
		want := "vmnetbar at " + path + " did not answer within 200ms; is it hung? Check its log"
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v does not wrap context.DeadlineExceeded", name, err)
		}
	}
	// A cancelled request (Ctrl-C) stays context.Canceled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Overview(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Overview = %v, want context.Canceled", err)
	}
}

func TestClientRefusesLongPath(t *testing.T) {
	path := "/tmp/" + strings.Repeat("d", 60) + "/" + strings.Repeat("s", 50) + ".sock"
	_, err := NewClient(path).Overview(ctxT(t))
	if !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("Overview on a %d-byte path = %v, want ErrPathTooLong", len(path), err)
	}
	for _, frag := range []string{path + " is 121 bytes", "the limit is 103", "pass a shorter --control PATH"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	if strings.Contains(err.Error(), "invalid argument") {
		t.Errorf("error %q still says invalid argument", err)
	}
}
