package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize is the largest frame the link carries in either direction.
const MaxFrameSize = 65535

// headerSize is the length prefix of a frame on the daemon stream.
const headerSize = 4

// DefaultDecoderSize is the buffer size NewDecoder uses for a size of 0.
const DefaultDecoderSize = 256 << 10

// FrameLengthError is a frame length on the daemon stream outside
// 1..MaxFrameSize: a protocol error (the connection is unusable).
type FrameLengthError struct {
	Length uint32
}

func (e *FrameLengthError) Error() string {
	return fmt.Sprintf("netlink: daemon sent a frame length of %d (valid lengths are 1..%d): protocol error", e.Length, MaxFrameSize)
}

// ErrFrameSize is returned when encoding a frame that is empty or longer
// than MaxFrameSize.
var ErrFrameSize = errors.New("netlink: frame length must be 1..65535 bytes")

// AppendFrame appends frame with its 4-byte big-endian length prefix to dst.
func AppendFrame(dst, frame []byte) ([]byte, error) {
	if len(frame) == 0 || len(frame) > MaxFrameSize {
		return dst, fmt.Errorf("%w (got %d)", ErrFrameSize, len(frame))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
	return append(dst, frame...), nil
}

// Encoder writes frames to a stream, each frame's header and body in one
// Write call.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// WriteFrame writes one frame (header and body in one Write call).
func (e *Encoder) WriteFrame(frame []byte) error {
	b, err := AppendFrame(e.buf[:0], frame)
	if err != nil {
		return err
	}
	e.buf = b
	_, err = e.w.Write(b)
	return err
}

// Decoder parses the daemon stream from a fixed buffer: it never allocates
// from a length it read. Use Space and Commit to fill it (or ReadFrame), and
// Next to take the complete frames buffered.
type Decoder struct {
	buf  []byte
	r, w int // buf[r:w] holds unparsed bytes
	err  error
}

// NewDecoder returns a Decoder with a buffer of size bytes (0 means
// DefaultDecoderSize); the buffer always holds at least one largest frame.
func NewDecoder(size int) *Decoder {
	if size == 0 {
		size = DefaultDecoderSize
	}
	if size < headerSize+MaxFrameSize {
		size = headerSize + MaxFrameSize
	}
	return &Decoder{buf: make([]byte, size)}
}

// Reset discards all buffered bytes and any protocol error.
func (d *Decoder) Reset() { d.r, d.w, d.err = 0, 0, nil }

// Pending is the number of buffered bytes not yet returned by Next.
func (d *Decoder) Pending() int { return d.w - d.r }

// Space returns the free part of the buffer to read into, moving buffered
// bytes to the front first when needed. Frames returned by Next are valid
// only until the next call of Space.
func (d *Decoder) Space() []byte {
	if d.r == d.w {
		d.r, d.w = 0, 0
		return d.buf
	}
	// Move the partial frame to the front when the frame cannot end in
	// the buffer as it is, or when the space at the front is worth at
	// least the copy and the space at the back is running out. Each
	// byte copied is paid for by a byte consumed: decoding stays linear.
	need := headerSize
	if d.w-d.r >= headerSize {
		if n := binary.BigEndian.Uint32(d.buf[d.r:]); n <= MaxFrameSize {
			need += int(n) // a bad length is left for Next to report
		}
	}
	if d.r > 0 && (d.r+need > len(d.buf) || (len(d.buf)-d.w < len(d.buf)/4 && d.r >= d.w-d.r)) {
		d.w = copy(d.buf, d.buf[d.r:d.w])
		d.r = 0
	}
	return d.buf[d.w:]
}

// Commit records that n bytes were read into the slice Space returned.
func (d *Decoder) Commit(n int) {
	if n < 0 || n > len(d.buf)-d.w {
		panic("netlink: Decoder.Commit out of range")
	}
	d.w += n
}

// Next returns the next complete frame, or nil when more bytes are needed.
// A length outside 1..MaxFrameSize returns a *FrameLengthError, and keeps
// returning it until Reset.
func (d *Decoder) Next() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.w-d.r < headerSize {
		return nil, nil
	}
	n := binary.BigEndian.Uint32(d.buf[d.r:])
	if n == 0 || n > MaxFrameSize {
		d.err = &FrameLengthError{Length: n}
		return nil, d.err
	}
	end := d.r + headerSize + int(n)
	if end > d.w {
		return nil, nil
	}
	f := d.buf[d.r+headerSize : end : end]
	d.r = end
	return f, nil
}

// ReadFrame returns the next frame, reading from r as needed. The frame is
// valid until the next call. At the end of the stream it returns io.EOF if
// no bytes were pending and io.ErrUnexpectedEOF otherwise.
func (d *Decoder) ReadFrame(r io.Reader) ([]byte, error) {
	for {
		f, err := d.Next()
		if f != nil || err != nil {
			return f, err
		}
		n, err := r.Read(d.Space())
		d.Commit(n)
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) && d.Pending() > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}
