// Command vmnetbar is a menu-bar app that boots a Linux VM and keeps its
// network link to socket_vmnet alive across daemon restarts.
package main

import (
	"os"

	"github.com/vmnetbar/vmnetbar/app/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{
		Version: version,
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
	}))
}
