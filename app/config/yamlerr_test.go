package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestYAMLErrorLines: a YAML syntax error names the line to fix. The yaml
// library itself reports most of these on another line (the comment says
// which), or on none.
func TestYAMLErrorLines(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.dir, "config.yaml")
	const tab = "this line is indented with a tab: YAML indents with spaces only, replace the tab with spaces"
	tests := []struct {
		name, text string
		line       int
		want       string
	}{
		// yaml: line 2
		{"tab indents a key", "vm:\n  kernel: vmlinuz\n\tcpus: 2\n", 3, tab},
		// yaml: no line
		{"tab on the first line", "\tvm:\n  kernel: vmlinuz\n", 1, tab},
		{"tab indents the first key", "vm:\n\tkernel: vmlinuz\n", 2, tab},
		// yaml: line 2
		{"tab before a comment", "vm:\n  kernel: vmlinuz\n\t# the CPUs\n  cpus: 2\n", 3, tab},
		// yaml: line 5
		{"tab on a blank last line", "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: s\n  mtu: 1500\n\t\n", 6, tab},
		{"tab after blank lines", "vm:\n  kernel: vmlinuz\n\nnetwork:\n\n\tsocket: s\n", 6, tab},
		// yaml: line 2
		{"key dedented by one", "vm:\n  kernel: vmlinuz\n cpus: 2\nnetwork:\n  socket: s\n", 3,
			"did not find expected key: check this line's indentation"},
		// yaml: line 1
		{"list item among keys", "vm:\n  kernel: vmlinuz\n  - cpus\n", 3, "did not find expected key"},
		// yaml: line 1
		{"stray bracket", "vm:\n  kernel: vmlinuz\n  cpus: 2\n  ]\n", 4, "did not find expected key"},
		// yaml: line 4
		{"dedented in the second section", "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: s\n mtu: 1500\n", 5, "did not find expected key"},
		{"key indented too far", "vm:\n  kernel: vmlinuz\n   cpus: 2\nnetwork:\n  socket: s\n", 3,
			"mapping values are not allowed in this context: check this line's indentation"},
		{"colon in a value", "vm:\n  kernel: vmlinuz\n  cmdline: console=hvc0 root: /dev/vda\n", 3,
			`put a value that contains ": " in quotes`},
		{"missing colon", "vm:\n  kernel: vmlinuz\n  cpus 2\nnetwork:\n  socket: s\n", 3,
			"could not find expected ':': write each setting as key: value, on one line"},
		{"missing colon at the end", "vm:\n  kernel: vmlinuz\nnetwork\n", 3, "could not find expected ':'"},
		// yaml: line 2
		{"unclosed list", "vm:\n  kernel: vmlinuz\n  cpus: [1, 2\nnetwork:\n  socket: s\n", 3,
			"a [ opened on this line is never closed: add the closing ]"},
		{"unclosed mapping", "vm: {kernel: vmlinuz\nnetwork: {socket: s}\n", 1, "a { opened on this line is never closed"},
		{"unclosed quote", "vm:\n  kernel: vmlinuz\n  cmdline: \"console=hvc0\n  cpus: 2\n", 3,
			"a quote opened on this line is never closed: add the closing quote"},
		{"@ starts a value", "vm:\n  kernel: vmlinuz\n  cmdline: @x\n", 3, "a value starting with @ or ` must be put in quotes"},
		// yaml: no line
		{"unknown alias", "vm:\n  kernel: vmlinuz\n\n  cpus: *n\n", 4, "unknown anchor 'n' referenced"},
		// yaml: no line
		{"control character", "vm:\n  kernel: vmlinuz\n  cpus: \x01\n", 3, "this line holds a control character"},
		{"CRLF line ends", "vm:\r\n  kernel: vmlinuz\r\n\tcpus: 2\r\n", 3, tab},
		{"no final newline", "vm:\n  kernel: vmlinuz\n\tcpus: 2", 3, tab},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(f.write(t, tt.text), f.opts())
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want a *config.Error", err, err)
			}
			if ce.Line != tt.line {
				t.Errorf("line %d, want %d: %s", ce.Line, tt.line, err)
			}
			prefix := "config " + file + ": line "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), ": not valid YAML: ") {
				t.Errorf("error %q does not start with %q and say not valid YAML", err, prefix)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", err, tt.want)
			}
		})
	}
}

// TestYAMLErrorLongFile: an error the yaml library reports on no line, far
// down a long file, is found by bisection, on the right line.
func TestYAMLErrorLongFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("vm:\n  kernel: vmlinuz\n")
	for range 500 {
		b.WriteString("  # a comment line\n")
	}
	b.WriteString("  cpus: *n\n") // line 503
	for range 500 {
		b.WriteString("  # another comment line\n")
	}
	b.WriteString("network:\n  socket: s\n")
	_, _, err := parse("/c.yaml", []byte(b.String()), Options{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 503 {
		t.Fatalf("got %v, want an error on line 503", err)
	}
}

func TestProblemLineWithoutAnswer(t *testing.T) {
	// The problem is never reproduced by a part of the file: the answer
	// is the last line rather than a line past the end.
	data := []byte("a: 1\nb: 2\n")
	if got := problemLine(data, lineEnds(data), "no such problem", 0); got != 2 {
		t.Fatalf("line %d, want 2", got)
	}
	if got := lineEnds(nil); len(got) != 1 || got[0] != 0 {
		t.Fatalf("lineEnds(nil) = %v", got)
	}
}
