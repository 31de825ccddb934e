package model

import (
	"net"
	"strings"
)

// SSHArgs returns the arguments of the ssh command that logs in to v's
// guest, after the program's name: what 'vmnetbar ssh' runs and the menu's
// "Copy SSH command" and "Open Terminal" show. They are, in this order:
//
//	-i KEY -o IdentitiesOnly=yes                                 with VM.SSHKey (-o IdentityFile=KEY for a KEY with '%')
//	-o UserKnownHostsFile=KH -o StrictHostKeyChecking=accept-new with VM.KnownHosts
//	-p PORT USER@HOST                                            with VM.SSHAddress (HOST:PORT)
//	USER@IP                                                      else: the guest's IPv4 address as its link learned it
//
// KH is in double quotes when it has a blank or a quote (ssh splits
// UserKnownHostsFile at blanks: a macOS state directory, in "Application
// Support", has one), and a '%' in it is doubled (ssh expands %-tokens in
// it). -i's KEY is given as is.
//
// SSHArgs is nil when there is no user (VM.SSHUser) or nowhere to log in
// to (no SSHAddress and no guest address). It does not look at the VM's
// state: the caller decides whether to log in now (VM.SSH).
func (v VMStatus) SSHArgs() []string {
	host, port := v.sshHostPort()
	if v.VM.SSHUser == "" || host == "" {
		return nil
	}
	var args []string
	switch key := v.VM.SSHKey; {
	case strings.Contains(key, "%"):
		// ssh opens -i's file by its literal name, then expands
		// %-tokens in it again when it loads the key: such a name works
		// only as an option's value, where "%%" is a '%'.
		args = append(args, "-o", "IdentityFile="+sshConfigPath(key), "-o", "IdentitiesOnly=yes")
	case key != "":
		args = append(args, "-i", key, "-o", "IdentitiesOnly=yes")
	}
	if v.VM.KnownHosts != "" {
		args = append(args, "-o", "UserKnownHostsFile="+sshConfigPath(v.VM.KnownHosts), "-o", "StrictHostKeyChecking=accept-new")
	}
	if port != "" {
		args = append(args, "-p", port)
	}
	return append(args, v.VM.SSHUser+"@"+host)
}

// sshHostPort is where the guest's SSH server is: SSHAddress split into
// its host and port, else the guest's IPv4 address and no port ("": the
// default, 22). host is "" when neither is known.
func (v VMStatus) sshHostPort() (host, port string) {
	if a := v.VM.SSHAddress; a != "" {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			// Not HOST:PORT (the configuration checks it is): a host.
			return strings.Trim(a, "[]"), ""
		}
		return h, p
	}
	if ip := v.Status().LiveGuest().IPv4; ip.IsValid() {
		return ip.String(), ""
	}
	return "", ""
}

// sshConfigPath writes path as a value of an ssh option that names files
// (-o UserKnownHostsFile=…): '%' doubled, since ssh expands %-tokens, and
// in double quotes, with '"' and '\' escaped, when it has a blank or a
// quote, since ssh splits such a value at blanks.
func sshConfigPath(path string) string {
	path = strings.ReplaceAll(path, "%", "%%")
	if !strings.ContainsAny(path, " \t\"'\\") {
		return path
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(path) + `"`
}

// ShellJoin writes argv as one command line for a POSIX shell: each
// argument as it is when it has only characters no shell treats specially,
// else in single quotes (a key in "Application Support"). The menu's Copy
// SSH command and the command line show SSH commands with it.
func ShellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
