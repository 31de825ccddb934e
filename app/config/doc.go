// Package config owns vmnetbar's configuration file and the per-user
// directories the app writes to.
//
// The file is YAML. Every key is checked: an unknown key or a bad value is an
// error naming the key and saying what to write instead. The one value the
// app writes back is vm.mac: when it is absent a MAC address is generated
// once and inserted into the file, keeping the user's comments and layout.
//
// Paths follow the platform's conventions: ~/Library/... on macOS, the XDG
// base directory variables on Linux (so a test can run an isolated instance
// by pointing XDG_CONFIG_HOME, XDG_STATE_HOME and XDG_RUNTIME_DIR at
// temporary directories).
//
// config imports the standard library, yaml, logrus (for log levels) and
// vmhost (for its size and MAC parsers and its Config type). It holds no
// global state.
package config
