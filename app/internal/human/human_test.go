package human

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1500, "1.5 kB"},
		{1514, "1.5 kB"},
		{999_949, "999.9 kB"},
		{999_950, "1.0 MB"},
		{3 << 20, "3.1 MB"},
		{1_234_567_890, "1.2 GB"},
		{3_400_000_000, "3.4 GB"},
		{1 << 62, "4.6 EB"},
		{^uint64(0), "18.4 EB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestCompactBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0B", 999: "999B", 1000: "1.0kB", 1234: "1.2kB", 1_200_000: "1.2MB", 3_400_000: "3.4MB",
		999_960: "1.0MB", 5_000_000_000: "5.0GB", 1 << 62: "4.6EB",
	} {
		if got := CompactBytes(n); got != want {
			t.Errorf("CompactBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{850 * time.Millisecond, "850ms"},
		{1440 * time.Millisecond, "1.4s"},
		{2500 * time.Millisecond, "2.5s"},
		{3 * time.Second, "3s"},
		{9999 * time.Millisecond, "9.9s"},
		{10 * time.Second, "10s"},
		{59*time.Second + 999*time.Millisecond, "59s"},
		{time.Minute, "1m"},
		{192 * time.Second, "3m"},
		{59*time.Minute + 59*time.Second, "59m"},
		{time.Hour, "1h 0m"},
		{2*time.Hour + 5*time.Minute, "2h 5m"},
		{2*time.Hour + 14*time.Minute, "2h 14m"},
		{23*time.Hour + 59*time.Minute, "23h 59m"},
		{24 * time.Hour, "1d 0h"},
		{100*24*time.Hour + 5*time.Hour, "100d 5h"},
	} {
		if got := Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
