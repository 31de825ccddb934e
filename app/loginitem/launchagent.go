package loginitem

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// launchctlTimeout bounds every launchctl call but bootout.
const launchctlTimeout = 15 * time.Second

// exitTimeOut is the plist's ExitTimeOut, in seconds: how long launchd
// waits after SIGTERM before SIGKILL. vmnetbar stops its VM on SIGTERM,
// which takes up to the stop timeout (30 s by default) plus a grace;
// launchd's own default (20 s) would kill it halfway through.
const exitTimeOut = 60

// bootoutTimeout bounds `launchctl bootout`, which waits for the job to
// exit: up to exitTimeOut.
const bootoutTimeout = exitTimeOut*time.Second + launchctlTimeout

// LaunchAgentConfig describes a macOS LaunchAgent.
type LaunchAgentConfig struct {
	Home string   // the user's home directory
	UID  int      // the user's uid (the GUI domain is gui/UID)
	Exe  string   // absolute path of the program
	Args []string // its arguments
	// Run runs launchctl. Nil means ExecRunner.
	Run Runner
	// IsJob tells that the calling process is itself the agent's job
	// (launchd set XPC_SERVICE_NAME to Label). Disable then leaves the job
	// loaded, since booting it out would stop the caller; with its plist
	// gone it does not start at the next login.
	IsJob bool
}

// LaunchAgent is launch at login on macOS:
// ~/Library/LaunchAgents/io.github.vmnetbar.plist, loaded with
// `launchctl bootstrap gui/UID PLIST` and unloaded with
// `launchctl bootout gui/UID/io.github.vmnetbar`.
//
// Loading an agent with RunAtLoad starts it at once, so enabling from a
// running vmnetbar launches a second one, which finds the control socket
// taken and exits; from the next login on only the agent runs.
type LaunchAgent struct {
	cfg     LaunchAgentConfig
	path    string
	logPath string
}

var _ Manager = (*LaunchAgent)(nil)

// NewLaunchAgent validates cfg and returns its LaunchAgent.
func NewLaunchAgent(cfg LaunchAgentConfig) (*LaunchAgent, error) {
	if err := checkProgram(cfg.Exe, cfg.Args); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.Home) {
		return nil, fmt.Errorf("login item: home directory %q is not absolute; set HOME", cfg.Home)
	}
	if cfg.UID < 0 {
		return nil, fmt.Errorf("login item: bad uid %d", cfg.UID)
	}
	if cfg.Run == nil {
		cfg.Run = ExecRunner
	}
	return &LaunchAgent{
		cfg:     cfg,
		path:    filepath.Join(cfg.Home, "Library", "LaunchAgents", Label+".plist"),
		logPath: filepath.Join(cfg.Home, "Library", "Logs", "vmnetbar", "launchd.log"),
	}, nil
}

// Path is the agent's plist file.
func (a *LaunchAgent) Path() string { return a.path }

// LogPath is where launchd sends the program's stdout and stderr.
func (a *LaunchAgent) LogPath() string { return a.logPath }

func (a *LaunchAgent) domain() string  { return "gui/" + strconv.Itoa(a.cfg.UID) }
func (a *LaunchAgent) service() string { return a.domain() + "/" + Label }

// Enable writes the plist and loads it unless the agent is loaded already
// (then the new plist takes effect at the next login).
func (a *LaunchAgent) Enable() error {
	if err := os.MkdirAll(filepath.Dir(a.logPath), 0o755); err != nil {
		return fmt.Errorf("login item: creating the log directory: %w", err)
	}
	old, oldErr := os.ReadFile(a.path)
	if err := writeFileAtomic(a.path, a.Plist(), 0o644); err != nil {
		return fmt.Errorf("login item: writing %s: %w", a.path, err)
	}
	if err := a.load(); err != nil {
		// Leave things as they were: launchd would load a plist left
		// behind at the next login.
		if oldErr == nil {
			err = errors.Join(err, writeFileAtomic(a.path, old, 0o644))
		} else {
			err = errors.Join(err, removeIfExists(a.path))
		}
		return err
	}
	return nil
}

// load bootstraps the agent unless it is loaded already.
func (a *LaunchAgent) load() error {
	loaded, err := a.loaded()
	if err != nil || loaded {
		return err
	}
	out, err := a.launchctl("bootstrap", a.domain(), a.path)
	if err == nil {
		return nil
	}
	// "Already loaded" comes back as several errors depending on the macOS
	// version (5: Input/output error, 17, 37); what counts is the outcome.
	if loaded, lerr := a.loaded(); lerr == nil && loaded {
		return nil
	}
	return fmt.Errorf("login item: launchctl bootstrap %s %s: %w: %s", a.domain(), a.path, err, out)
}

// Disable unloads the agent (unless the caller is the agent's own job) and
// removes its plist.
func (a *LaunchAgent) Disable() error {
	if !a.cfg.IsJob {
		loaded, err := a.loaded()
		if err != nil {
			return err
		}
		if loaded {
			if out, err := a.launchctlWithin(bootoutTimeout, "bootout", a.service()); err != nil {
				if still, lerr := a.loaded(); lerr != nil || still {
					return fmt.Errorf("login item: launchctl bootout %s: %w: %s", a.service(), err, out)
				}
			}
		}
	}
	if err := removeIfExists(a.path); err != nil {
		return fmt.Errorf("login item: removing %s: %w", a.path, err)
	}
	return nil
}

// Enabled reports whether the plist exists: launchd loads every plist in
// ~/Library/LaunchAgents at login.
func (a *LaunchAgent) Enabled() (bool, error) {
	_, err := os.Stat(a.path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("login item: %w", err)
}

// loaded asks launchd whether the agent is loaded in the GUI domain.
func (a *LaunchAgent) loaded() (bool, error) {
	out, err := a.launchctl("print", a.service())
	if err == nil {
		return true, nil
	}
	var exitErr interface{ ExitCode() int }
	if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
		// launchctl print fails (113: could not find service) when the
		// service is not loaded.
		return false, nil
	}
	return false, fmt.Errorf("login item: launchctl print %s: %w: %s", a.service(), err, out)
}

func (a *LaunchAgent) launchctl(args ...string) (string, error) {
	return a.launchctlWithin(launchctlTimeout, args...)
}

func (a *LaunchAgent) launchctlWithin(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := a.cfg.Run(ctx, "launchctl", args...)
	return strings.TrimSpace(string(out)), err
}

// Plist is the agent's property list.
func (a *LaunchAgent) Plist() []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	str := func(key, val string) {
		fmt.Fprintf(&b, "\t<key>%s</key>\n\t<string>%s</string>\n", xmlText(key), xmlText(val))
	}
	boolean := func(key string, val bool) {
		fmt.Fprintf(&b, "\t<key>%s</key>\n\t<%t/>\n", xmlText(key), val)
	}
	str("Label", Label)
	// The app the agent belongs to, named in System Settings > Login Items.
	b.WriteString("\t<key>AssociatedBundleIdentifiers</key>\n\t<array>\n")
	fmt.Fprintf(&b, "\t\t<string>%s</string>\n", xmlText(Label))
	b.WriteString("\t</array>\n")
	b.WriteString("\t<key>ProgramArguments</key>\n\t<array>\n")
	for _, arg := range append([]string{a.cfg.Exe}, a.cfg.Args...) {
		fmt.Fprintf(&b, "\t\t<string>%s</string>\n", xmlText(arg))
	}
	b.WriteString("\t</array>\n")
	boolean("RunAtLoad", true)
	boolean("KeepAlive", false)
	str("ProcessType", "Interactive")
	fmt.Fprintf(&b, "\t<key>ExitTimeOut</key>\n\t<integer>%d</integer>\n", exitTimeOut)
	str("StandardOutPath", a.logPath)
	str("StandardErrorPath", a.logPath)
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes()
}

// xmlText escapes s for XML character data.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
