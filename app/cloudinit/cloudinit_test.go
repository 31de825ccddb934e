package cloudinit

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cloud-init's own schema check accepts vmnetbar's cloud-config, and the
// user's cloud-config part. Where cloud-init is not installed the test is
// skipped: it is Debian's cloud-init package (or its files extracted, with
// a cloud-init wrapper on PATH).
func TestCloudInitSchema(t *testing.T) {
	ci, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init not installed: the schema is not checked")
	}
	s := testSeed(t)
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	user := "#cloud-config\nusers:\n  - default\n  - name: bob\n    groups: [adm]\npackages: [htop]\n"
	s.UserData = []byte(user)
	merged, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	parts := readMultipart(t, merged.UserData)
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ours":      string(f.UserData),
		"ours-part": parts[0].body,
		"user-part": parts[1].body,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ci, "schema", "--config-file", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
			t.Errorf("cloud-init schema --config-file %s: %v\n%s\n%s", name, err, out, content)
		}
	}
	// The check can fail: a user that is not a list or mapping is refused.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("#cloud-config\nusers: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ci, "schema", "--config-file", bad).CombinedOutput(); err == nil {
		t.Errorf("cloud-init schema accepted users: 5:\n%s", out)
	}
}

// mergeScript runs cloud-init's own user-data processing on a file: the
// MIME parts it finds and the cloud-config it merges from them, as JSON.
const mergeScript = `
import json, sys, tempfile
from cloudinit import handlers, helpers, user_data
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
d = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": d, "run_dir": d})
with open(sys.argv[1], "rb") as f:
    msg = user_data.UserDataProcessor(paths).process(f.read())
h = CloudConfigPartHandler(paths)
h.handle_part(None, handlers.CONTENT_START, None, None, None, None)
types = []
for part in msg.walk():
    if part.is_multipart():
        continue
    ctype = part.get_content_type()
    types.append(ctype)
    if ctype == "text/cloud-config":
        h.handle_part(None, ctype, part.get_filename() or "part", part.get_payload(decode=True), None, dict(part.items()))
    elif ctype == "text/x-shellscript":
        types.append(part.get_payload(decode=True).decode())
print(json.dumps({"types": types, "config": h.cloud_buf}))
`

// python returns a Python that imports cloudinit, or skips.
func python(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import cloudinit.user_data").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with cloud-init's modules (Debian package cloud-init): cloud-init's merge is not checked")
	return ""
}

// cloud-init itself merges the user's cloud-config into vmnetbar's: the
// users and keys add up, vmnetbar's values stay, the user's new keys come
// in; a script part is kept as a script.
func TestCloudInitMerge(t *testing.T) {
	py := python(t)
	s := testSeed(t)
	userKey := testKey(t, 7, "bob@x")
	s.UserData = []byte("#cloud-config\nmanage_etc_hosts: false\nusers:\n  - name: bob\n    ssh_authorized_keys: [\"" +
		userKey + "\"]\npackages: [htop]\n")
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Types  []string
		Config struct {
			ManageEtcHosts any `json:"manage_etc_hosts"`
			Packages       []string
			Users          []struct {
				Name string
				Keys []string `json:"ssh_authorized_keys"`
				Sudo string
			}
		}
	}
	run := func(userData []byte) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "user-data")
		if err := os.WriteFile(path, userData, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "-c", mergeScript, path).Output()
		if err != nil {
			t.Fatalf("cloud-init's merge: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	run(f.UserData)
	if strings.Join(got.Types, ",") != "text/cloud-config,text/cloud-config" {
		t.Errorf("parts %q", got.Types)
	}
	c := got.Config
	if c.ManageEtcHosts != true {
		t.Errorf("manage_etc_hosts = %v: the user's value replaced vmnetbar's", c.ManageEtcHosts)
	}
	if len(c.Users) != 2 || c.Users[0].Name != "alice" || c.Users[1].Name != "bob" {
		t.Fatalf("users = %+v, want alice then bob", c.Users)
	}
	if c.Users[0].Sudo != "ALL=(ALL) NOPASSWD:ALL" || len(c.Users[0].Keys) != 2 {
		t.Errorf("alice = %+v", c.Users[0])
	}
	if len(c.Users[1].Keys) != 1 || c.Users[1].Keys[0] != userKey {
		t.Errorf("bob = %+v", c.Users[1])
	}
	if strings.Join(c.Packages, ",") != "htop" {
		t.Errorf("packages = %q", c.Packages)
	}

	script := "#!/bin/sh\necho hello\n"
	s.UserData = []byte(script)
	if f, err = s.Render(); err != nil {
		t.Fatal(err)
	}
	run(f.UserData)
	if strings.Join(got.Types, "|") != "text/cloud-config|text/x-shellscript|"+script {
		t.Errorf("parts %q", got.Types)
	}
	if len(got.Config.Users) != 1 || got.Config.Users[0].Name != "alice" {
		t.Errorf("users = %+v", got.Config.Users)
	}
}
