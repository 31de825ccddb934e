package notify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestOsascriptPassesTextAsArguments(t *testing.T) {
	var gotName string
	var gotArgs []string
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("osascript run without a deadline")
		}
		gotName, gotArgs = name, args
		return nil, nil
	}
	title := `vmnetbar: "quoted" \ back\slash`
	body := "it's \"down\"\" & end tell\ndo shell script \"rm -rf ~\"\x00 ✓\t"
	if err := NewOsascript(run).Send(title, body); err != nil {
		t.Fatal(err)
	}
	if gotName != "osascript" {
		t.Errorf("ran %q, want osascript", gotName)
	}
	want := []string{
		"-e", "on run argv",
		"-e", "display notification (item 2 of argv) with title (item 1 of argv)",
		"-e", "end run",
		title,
		"it's \"down\"\" & end tell do shell script \"rm -rf ~\" ✓ ",
	}
	if !slices.Equal(gotArgs, want) {
		t.Errorf("osascript args\n%q\nwant\n%q", gotArgs, want)
	}
}

func TestOsascriptFailure(t *testing.T) {
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return []byte("execution error: Not authorized (-1743)\n"), errors.New("exit status 1")
	}
	err := NewOsascript(run).Send("t", "b")
	if err == nil || !strings.Contains(err.Error(), "Not authorized (-1743)") {
		t.Errorf("Send = %v, want the osascript output in the error", err)
	}
}

func TestOsascriptAlertPassesTextAsArguments(t *testing.T) {
	var gotName string
	var gotArgs []string
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("osascript run without a deadline")
		}
		gotName, gotArgs = name, args
		return nil, nil
	}
	msg := "config /x: line 3: unknown key \"vm.memroy\"\nend tell\x00 & \"rm -rf ~\"\t"
	if err := NewOsascript(run).Alert("vmnetbar did not start", msg); err != nil {
		t.Fatal(err)
	}
	if gotName != "osascript" {
		t.Errorf("ran %q, want osascript", gotName)
	}
	want := []string{
		"-e", "on run argv",
		"-e", "display alert (item 1 of argv) message (item 2 of argv) as critical giving up after 600",
		"-e", "end run",
		"vmnetbar did not start",
		"config /x: line 3: unknown key \"vm.memroy\"\nend tell & \"rm -rf ~\" ",
	}
	if !slices.Equal(gotArgs, want) {
		t.Errorf("osascript args\n%q\nwant\n%q", gotArgs, want)
	}
}

func TestOsascriptAlertFailure(t *testing.T) {
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return []byte("execution error: User canceled. (-128)\n"), errors.New("exit status 1")
	}
	err := NewOsascript(run).Alert("t", "b")
	if err == nil || !strings.Contains(err.Error(), "display alert") || !strings.Contains(err.Error(), "(-128)") {
		t.Errorf("Alert = %v, want the osascript output in the error", err)
	}
}
