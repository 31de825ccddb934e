package latest

import (
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPutReplacesUnreadValue(t *testing.T) {
	ch := make(chan int, 1)
	Put(ch, 1)
	Put(ch, 2)
	Put(ch, 3)
	if got := <-ch; got != 3 {
		t.Fatalf("read %d, want the latest value 3", got)
	}
	select {
	case v := <-ch:
		t.Fatalf("a second value %d was left behind", v)
	default:
	}
}

func TestPutNeverBlocksAndTheReaderEndsOnTheLast(t *testing.T) {
	ch := make(chan int, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	last := -1
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for {
			select {
			case v := <-ch:
				if v < last {
					t.Errorf("values went backwards: %d after %d", v, last)
				}
				last = v
			case <-done:
				// Drain what the sender left.
				select {
				case v := <-ch:
					last = v
				default:
				}
				return
			}
		}
	}()
	const n = 100000
	for i := 0; i <= n; i++ {
		Put(ch, i) // a blocking Put would hang this loop when the reader lags
	}
	close(done)
	wg.Wait()
	if last != n {
		t.Fatalf("the reader ended on %d, want the last value %d", last, n)
	}
}
