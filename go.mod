module github.com/vmnetbar/vmnetbar

go 1.26.0

require (
	fyne.io/systray v1.12.2
	github.com/Code-Hex/vz/v3 v3.7.1
	github.com/godbus/dbus/v5 v5.1.0
	github.com/kdomanski/iso9660 v0.4.0
	github.com/sirupsen/logrus v1.10.2
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	go.uber.org/goleak v1.3.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/Code-Hex/go-infinity-channel v1.0.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	golang.org/x/mod v0.42.0 // indirect
)
