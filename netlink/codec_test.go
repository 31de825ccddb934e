package netlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// referenceDecode is the obvious parser the Decoder must agree with.
func referenceDecode(b []byte) (frames [][]byte, bad bool, trailing int) {
	for {
		if len(b) < 4 {
			return frames, false, len(b)
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 || n > MaxFrameSize {
			return frames, true, 0
		}
		if uint32(len(b)-4) < n {
			return frames, false, len(b)
		}
		frames = append(frames, b[4:4+n])
		b = b[4+n:]
	}
}

func FuzzDecoder(f *testing.F) {
	one, _ := AppendFrame(nil, []byte("hello"))
	two, _ := AppendFrame(append([]byte(nil), one...), bytes.Repeat([]byte{7}, 1514))
	f.Add(uint16(1), one)
	f.Add(uint16(3), two)
	f.Add(uint16(4096), append(two, 0, 0, 0, 0, 1))
	f.Add(uint16(2), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint16(5), []byte{0, 1, 0, 0, 1})
	f.Add(uint16(7), []byte{0, 0, 5})
	f.Fuzz(func(t *testing.T, chunk uint16, data []byte) {
		if chunk == 0 {
			chunk = 1
		}
		want, wantBad, trailing := referenceDecode(data)
		dec := NewDecoder(int(chunk) % (3 * MaxFrameSize)) // small sizes are raised to the minimum
		r := &chunkReader{data: data, n: int(chunk)}
		var got [][]byte
		for {
			fr, err := dec.ReadFrame(r)
			if err != nil {
				var le *FrameLengthError
				switch {
				case errors.As(err, &le):
					if !wantBad {
						t.Fatalf("unexpected length error %v", err)
					}
					if le.Length != 0 && le.Length <= MaxFrameSize {
						t.Fatalf("length error for a valid length %d", le.Length)
					}
				case errors.Is(err, io.EOF):
					if wantBad || trailing != 0 {
						t.Fatalf("clean EOF, want bad=%v trailing=%d", wantBad, trailing)
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
					if wantBad || trailing == 0 {
						t.Fatalf("unexpected EOF, want bad=%v trailing=%d", wantBad, trailing)
					}
					if dec.Pending() != trailing {
						t.Fatalf("pending %d, want %d", dec.Pending(), trailing)
					}
				default:
					t.Fatal(err)
				}
				break
			}
			if len(fr) == 0 || len(fr) > MaxFrameSize {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			got = append(got, append([]byte(nil), fr...))
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
		// Round trip through the encoder.
		var buf bytes.Buffer
		enc := NewEncoder(&buf)
		for _, fr := range want {
			if err := enc.WriteFrame(fr); err != nil {
				t.Fatal(err)
			}
		}
		dec.Reset()
		for i := range want {
			fr, err := dec.ReadFrame(&buf)
			if err != nil || !bytes.Equal(fr, want[i]) {
				t.Fatalf("round trip frame %d: %v", i, err)
			}
		}
	})
}

// countWriter counts Write calls.
type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestEncoderOneWritePerFrame(t *testing.T) {
	w := &countWriter{}
	enc := NewEncoder(w)
	for _, n := range []int{1, 60, 1514, MaxFrameSize} {
		if err := enc.WriteFrame(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	if w.writes != 4 {
		t.Errorf("%d writes for 4 frames", w.writes)
	}
	for _, n := range []int{0, MaxFrameSize + 1} {
		if err := enc.WriteFrame(make([]byte, n)); !errors.Is(err, ErrFrameSize) {
			t.Errorf("frame of %d bytes: %v, want ErrFrameSize", n, err)
		}
	}
}

func TestDecoderDoesNotAllocate(t *testing.T) {
	var wire []byte
	for i := 0; i < 100; i++ {
		wire, _ = AppendFrame(wire, make([]byte, 60+i))
	}
	dec := NewDecoder(0)
	r := bytes.NewReader(wire)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(wire)
		dec.Reset()
		for {
			if _, err := dec.ReadFrame(r); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per 100 frames", allocs)
	}
}
