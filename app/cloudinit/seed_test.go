package cloudinit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKey is an authorized_keys line of a fixed ed25519 key.
func testKey(t testing.TB, n byte, comment string) string {
	t.Helper()
	seed := bytes.Repeat([]byte{n}, ed25519.SeedSize)
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func testSeed(t testing.TB) Seed {
	mac, err := net.ParseMAC("52:54:00:12:34:56")
	if err != nil {
		t.Fatal(err)
	}
	return Seed{
		InstanceID:     "i-0123456789abcdef",
		Hostname:       "dev",
		User:           "alice",
		AuthorizedKeys: []string{testKey(t, 1, "alice@mac"), testKey(t, 2, `odd "comment": #1`)},
		MAC:            mac,
	}
}

func TestRenderExact(t *testing.T) {
	s := testSeed(t)
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := "instance-id: \"i-0123456789abcdef\"\nlocal-hostname: \"dev\"\n"
	if string(f.MetaData) != wantMeta {
		t.Errorf("meta-data:\n%s\nwant:\n%s", f.MetaData, wantMeta)
	}
	wantUser := "#cloud-config\n" +
		"# Written by vmnetbar. To add your own settings, set user_data in vmnetbar's configuration.\n" +
		"manage_etc_hosts: true\n" +
		"users:\n" +
		"  - name: \"alice\"\n" +
		"    shell: \"/bin/bash\"\n" +
		"    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n" +
		"    lock_passwd: true\n" +
		"    ssh_authorized_keys:\n" +
		"      - \"" + testKey(t, 1, "alice@mac") + "\"\n" +
		"      - \"" + testKey(t, 2, `odd \"comment\": #1`) + "\"\n"
	if string(f.UserData) != wantUser {
		t.Errorf("user-data:\n%s\nwant:\n%s", f.UserData, wantUser)
	}
	wantNet := "version: 2\nethernets:\n  vmnet0:\n    match:\n      macaddress: \"52:54:00:12:34:56\"\n" +
		"    dhcp4: true\n    dhcp-identifier: mac\n"
	if string(f.NetworkConfig) != wantNet {
		t.Errorf("network-config:\n%s\nwant:\n%s", f.NetworkConfig, wantNet)
	}
}

// The files are YAML that says what issue 12 asks for, read by a YAML
// parser rather than compared as text.
func TestRenderYAML(t *testing.T) {
	s := testSeed(t)
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname"`
	}
	mustYAML(t, f.MetaData, &meta)
	if meta.InstanceID != s.InstanceID || meta.LocalHostname != "dev" {
		t.Errorf("meta-data = %+v", meta)
	}

	if !bytes.HasPrefix(f.UserData, []byte("#cloud-config\n")) {
		t.Errorf("user-data does not start with #cloud-config")
	}
	var ud struct {
		ManageEtcHosts any `yaml:"manage_etc_hosts"`
		Users          []struct {
			Name       string   `yaml:"name"`
			Shell      string   `yaml:"shell"`
			Sudo       string   `yaml:"sudo"`
			LockPasswd bool     `yaml:"lock_passwd"`
			Keys       []string `yaml:"ssh_authorized_keys"`
		} `yaml:"users"`
	}
	mustYAML(t, f.UserData, &ud)
	if ud.ManageEtcHosts != true {
		t.Errorf("manage_etc_hosts = %#v, want true", ud.ManageEtcHosts)
	}
	if len(ud.Users) != 1 {
		t.Fatalf("users = %+v, want one", ud.Users)
	}
	u := ud.Users[0]
	if u.Name != "alice" || u.Shell != "/bin/bash" || u.Sudo != "ALL=(ALL) NOPASSWD:ALL" || !u.LockPasswd {
		t.Errorf("user = %+v", u)
	}
	if strings.Join(u.Keys, "\n") != strings.Join(s.AuthorizedKeys, "\n") {
		t.Errorf("keys = %q, want %q", u.Keys, s.AuthorizedKeys)
	}
	for _, k := range u.Keys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			t.Errorf("key %q does not parse: %v", k, err)
		}
	}

	var nc struct {
		Version   int
		Ethernets map[string]struct {
			Match struct {
				MACAddress any `yaml:"macaddress"`
			}
			DHCP4          bool   `yaml:"dhcp4"`
			DHCPIdentifier string `yaml:"dhcp-identifier"`
		}
	}
	mustYAML(t, f.NetworkConfig, &nc)
	e, ok := nc.Ethernets["vmnet0"]
	if nc.Version != 2 || !ok || e.Match.MACAddress != "52:54:00:12:34:56" || !e.DHCP4 || e.DHCPIdentifier != "mac" {
		t.Errorf("network-config = %+v", nc)
	}
}

func mustYAML(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("not valid YAML: %v\n%s", err, b)
	}
}

// Every value is quoted: a MAC of digits only is a base-60 integer to a
// YAML 1.1 reader (PyYAML, which cloud-init uses), and a host name or user
// like "yes" or "on" a boolean.
func TestValuesQuoted(t *testing.T) {
	s := testSeed(t)
	s.MAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	s.Hostname = "on"
	s.User = "yes"
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`macaddress: "52:54:00:12:34:56"`, `local-hostname: "on"`} {
		if !bytes.Contains(f.NetworkConfig, []byte(want)) && !bytes.Contains(f.MetaData, []byte(want)) {
			t.Errorf("%q not found", want)
		}
	}
	if !bytes.Contains(f.UserData, []byte(`- name: "yes"`)) {
		t.Errorf("user name not quoted:\n%s", f.UserData)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Seed)
		field string
		msg   string
	}{
		{"no keys", func(s *Seed) { s.AuthorizedKeys = nil }, "ssh_keys", "no key to log in with"},
		{"bad key", func(s *Seed) { s.AuthorizedKeys = []string{"ssh-ed25519 AAAAnotbase64!"} }, "ssh_keys", "key 1"},
		{"two lines", func(s *Seed) { s.AuthorizedKeys = []string{testKey(t, 1, "") + "\n" + testKey(t, 2, "")} }, "ssh_keys", "more than one line"},
		{"user upper", func(s *Seed) { s.User = "Alice" }, "ssh_user", "set ssh_user"},
		{"user digits", func(s *Seed) { s.User = "1000" }, "ssh_user", "not a user name"},
		{"user injection", func(s *Seed) { s.User = "a\n  sudo: x" }, "ssh_user", "not a user name"},
		{"host trailing dash", func(s *Seed) { s.Hostname = "dev-" }, "local-hostname", "rename the VM"},
		{"host empty", func(s *Seed) { s.Hostname = "" }, "local-hostname", "not a host name"},
		{"iid", func(s *Seed) { s.InstanceID = "a b" }, "instance-id", "not an instance-id"},
		{"mac", func(s *Seed) { s.MAC = nil }, "mac", "not an Ethernet MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSeed(t)
			tc.edit(&s)
			_, err := s.Render()
			var se *SeedError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SeedError", err)
			}
			if se.Field != tc.field || !strings.Contains(se.Error(), tc.msg) {
				t.Errorf("err = %q (field %s), want field %s and %q", err, se.Field, tc.field, tc.msg)
			}
		})
	}
}

func TestParseUserData(t *testing.T) {
	for _, tc := range []struct {
		in, ctype string
	}{
		{"#cloud-config\npackages: [htop]\n", "text/cloud-config"},
		{"  \n#Cloud-Config\n", "text/cloud-config"},
		{"#cloud-config\n# nothing yet\n", "text/cloud-config"},
		{"#cloud-config-archive\n- type: text/cloud-config\n", "text/cloud-config-archive"},
		{"#cloud-config-jsonp\n[]\n", "text/cloud-config-jsonp"},
		{"#!/bin/sh\necho hi\n", "text/x-shellscript"},
		{"#include\nhttp://example.invalid/x\n", "text/x-include-url"},
		{"#include-once\nhttp://example.invalid/x\n", "text/x-include-once-url"},
		{"#cloud-boothook\n#!/bin/sh\n", "text/cloud-boothook"},
		{"#part-handler\n", "text/part-handler"},
		{"## template: jinja\n#cloud-config\n", "text/jinja2"},
		{"Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--b--\n", "multipart/mixed"},
		{string(gz(t, "#!/bin/sh\necho zipped\n")), "text/x-shellscript"},
	} {
		ud, err := ParseUserData("my.yaml", []byte(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if ud.ContentType != tc.ctype {
			t.Errorf("%q: content type %q, want %q", tc.in, ud.ContentType, tc.ctype)
		}
	}
}

func TestParseUserDataRefused(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "is empty"},
		{"packages: [htop]\n", `starts with "packages: [htop]", which cloud-init ignores`},
		{"cloud-config\n", "which cloud-init ignores"},
		{"#cloud-config\npackages: [htop\n", "is not valid cloud-config YAML"},
		{"#cloud-config\n- a\n- b\n", "line 2: cloud-config must be a mapping"},
		{"\xff\xfe#\x00c", "not UTF-8"},
		{"\x1f\x8bnot gzip", "not valid gzip"},
		{"MIME-Version: 1.0\nno blank line", "MIME message that cannot be read"},
		{"#!/bin/sh\n" + strings.Repeat("x", MaxUserDataSize), "larger than"},
	} {
		_, err := ParseUserData("~/my-user-data", []byte(tc.in))
		var ue *UserDataError
		if !errors.As(err, &ue) {
			t.Errorf("%.30q: err = %v, want a *UserDataError", tc.in, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "user_data ~/my-user-data: ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%.30q: err = %q, want it to name the file and say %q", tc.in, err, tc.msg)
		}
	}
}

// A gzip bomb is cut at MaxUserDataSize, not read whole.
func TestParseUserDataGzipLimit(t *testing.T) {
	big := gz(t, "#!/bin/sh\n"+strings.Repeat("\n", 4*MaxUserDataSize))
	if _, err := ParseUserData("u", big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

// part is one part of a multipart user-data, decoded.
type part struct {
	header map[string]string
	body   string
}

// readMultipart reads user-data as a MIME message with Go's reader.
func readMultipart(t *testing.T, b []byte) []part {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a MIME message: %v\n%s", err, b)
	}
	if msg.Header.Get("MIME-Version") != "1.0" {
		t.Errorf("MIME-Version = %q", msg.Header.Get("MIME-Version"))
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var parts []part
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading part %d: %v", len(parts)+1, err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for k := range p.Header {
			h[k] = p.Header.Get(k)
		}
		if h["Content-Transfer-Encoding"] == "base64" {
			dec, err := decodeBase64(string(body))
			if err != nil {
				t.Fatalf("part %d: %v", len(parts)+1, err)
			}
			body = dec
		}
		parts = append(parts, part{h, string(body)})
	}
	return parts
}

func TestMultipartCloudConfig(t *testing.T) {
	s := testSeed(t)
	ours, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	user := "#cloud-config\nusers:\n  - name: bob\npackages: [htop]\n"
	s.UserData, s.UserDataPath = []byte(user), "extra.yaml"
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	parts := readMultipart(t, f.UserData)
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	if ct := parts[0].header["Content-Type"]; !strings.HasPrefix(ct, "text/cloud-config") {
		t.Errorf("part 1 Content-Type %q", ct)
	}
	if parts[0].body != string(ours.UserData) {
		t.Errorf("part 1:\n%s\nwant vmnetbar's user-data:\n%s", parts[0].body, ours.UserData)
	}
	if ct := parts[1].header["Content-Type"]; !strings.HasPrefix(ct, "text/cloud-config") {
		t.Errorf("part 2 Content-Type %q", ct)
	}
	if mt := parts[1].header["Merge-Type"]; mt != "list(append)+dict(no_replace,recurse_list)+str()" {
		t.Errorf("part 2 Merge-Type %q", mt)
	}
	if parts[1].body != user {
		t.Errorf("part 2 = %q, want the user's file %q", parts[1].body, user)
	}
	// The same inputs give the same bytes (the boundary included).
	again, err := s.Render()
	if err != nil || !bytes.Equal(again.UserData, f.UserData) {
		t.Errorf("a second render differs (%v)", err)
	}
}

func TestMultipartScript(t *testing.T) {
	s := testSeed(t)
	for _, script := range []string{
		"#!/bin/sh\necho hello > /tmp/hello\n",
		"#!/bin/sh\necho no newline at the end",
		"#!/bin/sh\necho 'grüße'\n",
	} {
		s.UserData = []byte(script)
		f, err := s.Render()
		if err != nil {
			t.Fatal(err)
		}
		parts := readMultipart(t, f.UserData)
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2", len(parts))
		}
		if ct := parts[1].header["Content-Type"]; !strings.HasPrefix(ct, "text/x-shellscript") {
			t.Errorf("part 2 Content-Type %q", ct)
		}
		if _, ok := parts[1].header["Merge-Type"]; ok {
			t.Errorf("a script part has a Merge-Type")
		}
		if parts[1].body != script {
			t.Errorf("part 2 = %q, want %q", parts[1].body, script)
		}
	}
}

// A user's MIME file is a part as it stands, nested, and its boundary
// never clashes with ours.
func TestMultipartNested(t *testing.T) {
	s := testSeed(t)
	inner := "Content-Type: multipart/mixed; boundary=\"inner\"\nMIME-Version: 1.0\n\n" +
		"--inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho inner\n--inner--\n"
	s.UserData = []byte(inner)
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	parts := readMultipart(t, f.UserData)
	if len(parts) != 2 || !strings.HasPrefix(parts[1].header["Content-Type"], "multipart/mixed") {
		t.Fatalf("parts = %+v", parts)
	}
	if parts[1].body+"\n" != inner[strings.Index(inner, "\n\n")+2:] {
		t.Errorf("nested body %q", parts[1].body)
	}
}

// The boundary is chosen so that it is in neither part.
func TestMultipartBoundaryNotInContent(t *testing.T) {
	s := testSeed(t)
	ours := s.cloudConfig()
	ud := UserData{ContentType: "text/x-shellscript", Content: []byte("#!/bin/sh\n")}
	first := mimeMultipart(ours, ud)
	_, params, _ := mime.ParseMediaType(strings.TrimPrefix(strings.SplitN(string(first), "\n", 2)[0], "Content-Type: "))
	// The user's script now contains the boundary that was chosen.
	ud.Content = []byte("#!/bin/sh\n# " + params["boundary"] + "\n")
	out := mimeMultipart(ours, ud)
	parts := readMultipart(t, out)
	if len(parts) != 2 || parts[1].body != string(ud.Content) {
		t.Fatalf("parts = %+v", parts)
	}
}

func TestInstanceID(t *testing.T) {
	dir := t.TempDir()
	id, err := InstanceID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !iidRE.MatchString(id) || !strings.HasPrefix(id, "i-") {
		t.Fatalf("id %q", id)
	}
	again, err := InstanceID(dir)
	if err != nil || again != id {
		t.Fatalf("second call = %q, %v; want %q", again, err, id)
	}
	if err := ResetInstanceID(dir); err != nil {
		t.Fatal(err)
	}
	fresh, err := InstanceID(dir)
	if err != nil || fresh == id {
		t.Fatalf("after reset = %q, %v; want a new one", fresh, err)
	}
	if err := ResetInstanceID(t.TempDir()); err != nil {
		t.Errorf("reset without a file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, InstanceIDFile), []byte("no good\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := InstanceID(dir); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("bad file: err = %v", err)
	}
}
