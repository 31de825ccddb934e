package control

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	// refuseTimeout bounds the whole refusal of a connection over the cap:
	// reading its request (so the answer does not arrive before the
	// client's request, which HTTP clients take as a broken connection)
	// and writing the 503.
	refuseTimeout = time.Second
	// maxRefusing caps the connections being refused at once; beyond it a
	// connection over the cap is closed without an answer.
	maxRefusing = 16
	// maxRefusedHead is how much of a refused request is read.
	maxRefusedHead = 8 << 10
	// refuseLogInterval is the least time between two warnings about
	// refused connections: one per burst, not one per connection.
	refuseLogInterval = time.Minute
)

// limitListener caps the connections open at once. Accept counts each
// connection until it is closed; a connection over the cap is answered with
// a minimal HTTP 503 and closed. Accept never waits for a refused client: a
// goroutine per refusal (at most maxRefusing, each done within
// refuseTimeout, all ended by Close) answers it. Counting at this level
// covers idle keep-alive connections, watch streams and clients that never
// finish their request alike.
type limitListener struct {
	net.Listener
	max  int
	body []byte // the 503 answer
	log  logrus.FieldLogger
	now  func() time.Time

	mu       sync.Mutex
	open     int
	refused  int       // refused since the last warning
	lastWarn time.Time // zero before the first warning
	closed   bool
	refusing map[net.Conn]struct{} // connections being refused
	wg       sync.WaitGroup        // refusing goroutines
}

func newLimitListener(l net.Listener, max int, log logrus.FieldLogger) *limitListener {
	msg := errorJSON("vmnetbar's control API is busy: " + strconv.Itoa(max) +
		" connections are open, the most it serves at once; close idle clients (watch streams count too) and try again")
	resp := "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(msg)) + "\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n\r\n" + string(msg)
	return &limitListener{Listener: l, max: max, body: []byte(resp), log: log, now: time.Now, refusing: map[net.Conn]struct{}{}}
}

// Accept returns the next connection under the cap, refusing those over it.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.acquire() {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.refuse(c)
	}
}

// Close closes the listener, ends the refusals under way and waits for
// them.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.refusing {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *limitListener) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		return false
	}
	l.open++
	return true
}

func (l *limitListener) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
}

// conns returns the number of connections open (refused ones not
// included).
func (l *limitListener) conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// refuse answers 503 on c and closes it, in a goroutine; it closes c at
// once when too many refusals are under way or the listener is closed.
func (l *limitListener) refuse(c net.Conn) {
	l.mu.Lock()
	l.refused++
	now := l.now()
	warn := l.lastWarn.IsZero() || now.Sub(l.lastWarn) >= refuseLogInterval
	refused := l.refused
	if warn {
		l.lastWarn = now
		l.refused = 0
	}
	answer := !l.closed && len(l.refusing) < maxRefusing
	if answer {
		l.refusing[c] = struct{}{}
		l.wg.Add(1)
	}
	l.mu.Unlock()
	if warn {
		l.log.WithFields(logrus.Fields{"max_connections": l.max, "refused": refused}).
			Warn("control: too many API connections: refusing new ones with 503 until some close (this warning repeats at most once a minute)")
	}
	if !answer {
		c.Close()
		return
	}
	go func() {
		defer l.wg.Done()
		c.SetDeadline(l.now().Add(refuseTimeout))
		readHead(c)
		c.Write(l.body)
		c.Close()
		l.mu.Lock()
		delete(l.refusing, c)
		l.mu.Unlock()
	}()
}

// readHead reads from c until the end of a request's headers, an error or
// maxRefusedHead bytes.
func readHead(c net.Conn) {
	buf := make([]byte, maxRefusedHead)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil || bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			return
		}
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can, as
// net/http does before closing a connection whose request it did not read.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
