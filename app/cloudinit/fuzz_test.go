package cloudinit

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzUserData: a user-data file is the user's bytes. ParseUserData never
// panics; what it accepts goes into a multipart user-data from which a MIME
// reader gets vmnetbar's part and the user's content back unchanged.
func FuzzUserData(f *testing.F) {
	for _, seed := range []string{
		"#cloud-config\npackages: [htop]\n",
		"#cloud-config\n- a\n",
		"#!/bin/sh\necho hi",
		"#!/bin/sh\r\necho hi\r\n",
		"#include\nhttp://example.invalid/\n",
		"## template: jinja\n#cloud-config\n",
		"Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--b--\n",
		"MIME-Version: 1.0\n",
		"packages: [x]\n",
		"\x1f\x8b\x08\x00",
		"#!/bin/sh\n--==vmnetbar-0000000000000000==\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Add(gz(f, "#cloud-config\n{}\n"))
	ours := testSeed(f).cloudConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		ud, err := ParseUserData("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "user_data fuzz: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out := mimeMultipart(ours, ud)
		if ud.ContentType == "multipart/mixed" {
			return // the user's own MIME: passed through as it is
		}
		parts := readMultipart(t, out)
		if len(parts) != 2 {
			t.Fatalf("%d parts", len(parts))
		}
		if parts[0].body != string(ours) {
			t.Fatalf("vmnetbar's part changed: %q", parts[0].body)
		}
		if parts[1].body != string(ud.Content) {
			t.Fatalf("user's part = %q, want %q", parts[1].body, ud.Content)
		}
	})
}

// FuzzPubKeys: a *.pub file is read from the user's ~/.ssh. ParsePubKeys
// never panics, and every key it returns is one valid authorized_keys line
// that renders into a user-data that parses as YAML.
func FuzzPubKeys(f *testing.F) {
	f.Add([]byte(testKey(f, 1, "me@host") + "\n"))
	f.Add([]byte("# c\n" + testKey(f, 2, "") + "\r\n" + testKey(f, 3, "x y z") + "\n"))
	f.Add([]byte(`command="echo hi",no-pty ` + testKey(f, 4, "opts")))
	f.Add([]byte("ssh-rsa AAAA\n"))
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
	s := testSeed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, reason := ParsePubKeys(data)
		if (reason == "") == (len(keys) == 0) {
			t.Fatalf("keys %q with reason %q", keys, reason)
		}
		for _, k := range keys {
			if err := checkAuthorizedKey(k); err != nil {
				t.Fatalf("returned key %q: %v", k, err)
			}
		}
		if len(keys) == 0 {
			return
		}
		s.AuthorizedKeys = keys
		files, err := s.Render()
		if err != nil {
			t.Fatal(err)
		}
		var ud struct {
			Users []struct {
				Keys []string `yaml:"ssh_authorized_keys"`
			}
		}
		mustYAML(t, files.UserData, &ud)
		if len(ud.Users) != 1 || strings.Join(ud.Users[0].Keys, "\n") != strings.Join(keys, "\n") {
			t.Fatalf("keys read back %q, want %q", ud.Users, keys)
		}
		if bytes.Contains(files.UserData, []byte("\n#")) && !bytes.HasPrefix(files.UserData, []byte("#cloud-config\n#")) {
			t.Fatalf("a key broke the layout:\n%s", files.UserData)
		}
	})
}
