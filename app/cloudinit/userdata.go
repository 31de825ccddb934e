package cloudinit

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxUserDataSize is the largest user-data file (after gunzip) that a seed
// takes. cloud-init itself has no limit for NoCloud; this one keeps a wrong
// path (a disk image named as user_data) from being copied into the seed.
const MaxUserDataSize = 1 << 20

// MergeType is the merge rule given to the user's cloud-config part (as its
// Merge-Type header): lists append and dictionaries keep vmnetbar's values
// and recurse, so the user's users, keys, packages and runcmd add to
// vmnetbar's. A merge_how inside the user's own file comes first and wins.
const MergeType = "list(append)+dict(no_replace,recurse_list)+str()"

// The prefixes cloud-init recognises at the start of a user-data part
// (cloudinit/handlers/__init__.py INCLUSION_TYPES_MAP), matched longest
// first, case-insensitively, after leading white space.
var formats = []struct{ prefix, contentType string }{
	{"#include", "text/x-include-url"},
	{"#include-once", "text/x-include-once-url"},
	{"#!", "text/x-shellscript"},
	{"#cloud-config", "text/cloud-config"},
	{"#part-handler", "text/part-handler"},
	{"#cloud-boothook", "text/cloud-boothook"},
	{"#cloud-config-archive", "text/cloud-config-archive"},
	{"#cloud-config-jsonp", "text/cloud-config-jsonp"},
	{"## template: jinja", "text/jinja2"},
}

func init() {
	sort.SliceStable(formats, func(i, j int) bool { return len(formats[i].prefix) > len(formats[j].prefix) })
}

// UserData is a user's own user-data file, checked: its cloud-init content
// type and its content (gunzipped).
type UserData struct {
	// ContentType is the MIME type cloud-init gives it: text/cloud-config,
	// text/x-shellscript, ..., or "multipart/mixed" for a MIME file.
	ContentType string
	// Content is the file's bytes, gunzipped when it was gzip-compressed.
	Content []byte
}

// A UserDataError says why a user-data file is not one cloud-init runs.
type UserDataError struct {
	Path string // the file, as the user named it (user_data: PATH)
	Msg  string
}

func (e *UserDataError) Error() string {
	return fmt.Sprintf("user_data %s: %s", e.Path, e.Msg)
}

const formatHint = "start it with #cloud-config (cloud-config YAML), #! (a script), #include (URLs), " +
	"#cloud-boothook, #part-handler, #cloud-config-archive or \"## template: jinja\", " +
	"or give a MIME multipart file (made with `cloud-init devel make-mime`)"

// ParseUserData checks that data, read from the file path (used in errors
// only), is user-data that cloud-init runs, and says of which kind. It
// never panics, whatever the bytes: the file is the user's.
func ParseUserData(path string, data []byte) (UserData, error) {
	fail := func(format string, args ...any) (UserData, error) {
		return UserData{}, &UserDataError{Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return fail("looks gzip-compressed but is not valid gzip (%v): gunzip it or write it again", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, MaxUserDataSize+1))
		if err != nil {
			return fail("looks gzip-compressed but cannot be decompressed (%v): gunzip it or write it again", err)
		}
		data = out
	}
	if len(data) > MaxUserDataSize {
		return fail("is larger than %d KiB: user-data is a configuration or a script, not data; "+
			"fetch big files from the guest instead", MaxUserDataSize>>10)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("is empty: %s, or remove user_data", formatHint)
	}
	// cloud-init takes any file with "mime-version:" in its first 4096
	// bytes as a MIME message (user_data.convert_string).
	head := data[:min(len(data), 4096)]
	if bytes.Contains(bytes.ToLower(head), []byte("mime-version:")) {
		if err := checkMIME(data); err != nil {
			return fail("is a MIME message that cannot be read (%v): make it with `cloud-init devel make-mime`", err)
		}
		return UserData{ContentType: "multipart/mixed", Content: data}, nil
	}
	if !utf8.Valid(data) {
		return fail("is not UTF-8 text: %s", formatHint)
	}
	lc := strings.ToLower(strings.TrimLeft(string(data[:min(len(data), 64)]), " \t\r\n\v\f"))
	for _, f := range formats {
		if !strings.HasPrefix(lc, f.prefix) {
			continue
		}
		if f.contentType == "text/cloud-config" {
			if err := checkCloudConfig(data); err != nil {
				return fail("%v", err)
			}
		}
		return UserData{ContentType: f.contentType, Content: data}, nil
	}
	first, _, _ := strings.Cut(strings.TrimLeft(string(data), " \t\r\n\v\f"), "\n")
	if len(first) > 40 {
		first = first[:40] + "…"
	}
	return fail("starts with %q, which cloud-init ignores: %s", strings.TrimSpace(first), formatHint)
}

// checkCloudConfig: the YAML parses and is a mapping (or empty), as
// cloud-init needs; the error names the line.
func checkCloudConfig(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("is not valid cloud-config YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // only comments: an empty cloud-config
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: cloud-config must be a mapping of keys (users:, packages:, runcmd:, ...), not a %s",
			root.Line, kindName(root.Kind))
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}

// checkMIME: the message has a header block ending in an empty line.
func checkMIME(data []byte) error {
	d := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	end := bytes.Index(d, []byte("\n\n"))
	if end < 0 {
		return errors.New("no empty line after its headers")
	}
	for i, line := range strings.Split(string(d[:end]), "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			if i == 0 {
				return errors.New("it does not start with a header")
			}
			continue // a folded header line
		}
		if name, _, ok := strings.Cut(line, ":"); !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("header line %d %q is not \"Name: value\"", i+1, truncate(line, 40))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// mimeMultipart renders vmnetbar's cloud-config and the user's part as one
// MIME multipart/mixed message, the form in which cloud-init merges parts:
// ours first, then the user's (its cloud-config merged with MergeType).
// The boundary is derived from the content, so the output depends on the
// inputs alone.
func mimeMultipart(ours []byte, user UserData) []byte {
	sum := sha256.Sum256(append(append([]byte{}, ours...), user.Content...))
	boundary := "==vmnetbar-" + hex.EncodeToString(sum[:8]) + "=="
	for n := 0; bytes.Contains(ours, []byte(boundary)) || bytes.Contains(user.Content, []byte(boundary)); n++ {
		sum = sha256.Sum256(append(sum[:], byte(n)))
		boundary = "==vmnetbar-" + hex.EncodeToString(sum[:8]) + "=="
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", boundary)
	fmt.Fprintf(&b, "--%s\n", boundary)
	b.WriteString("Content-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"vmnetbar.cfg\"\n\n")
	b.Write(ours)
	fmt.Fprintf(&b, "\n--%s\n", boundary)
	if user.ContentType == "multipart/mixed" {
		// A MIME message is a part as it stands: its headers are the
		// part's headers (cloud-init walks nested multiparts).
		b.Write(bytes.TrimRight(user.Content, "\r\n"))
	} else {
		fmt.Fprintf(&b, "Content-Type: %s; charset=\"utf-8\"\nMIME-Version: 1.0\n", user.ContentType)
		if user.ContentType == "text/cloud-config" {
			fmt.Fprintf(&b, "Merge-Type: %s\n", MergeType)
		}
		b.WriteString("Content-Disposition: attachment; filename=\"user-data\"\n")
		if plain7bit(user.Content) {
			b.WriteString("Content-Transfer-Encoding: 7bit\n\n")
			b.Write(user.Content)
		} else {
			b.WriteString("Content-Transfer-Encoding: base64\n\n")
			enc := base64.StdEncoding.EncodeToString(user.Content)
			for len(enc) > 76 {
				b.WriteString(enc[:76] + "\n")
				enc = enc[76:]
			}
			b.WriteString(enc)
		}
	}
	fmt.Fprintf(&b, "\n--%s--\n", boundary)
	return b.Bytes()
}

// plain7bit: content that goes through MIME unchanged as 7bit: ASCII
// without NUL or a lone CR, lines of at most 998 bytes (RFC 5322), and
// ending in a newline (else the boundary's line break would be taken as
// part of the content's last line by a strict reader).
func plain7bit(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return false
	}
	line := 0
	for i, c := range b {
		switch {
		case c == '\n':
			line = 0
			continue
		case c == 0 || c >= 0x80:
			return false
		case c == '\r' && (i+1 >= len(b) || b[i+1] != '\n'):
			return false
		}
		line++
		if line > 998 {
			return false
		}
	}
	return true
}
