//go:build !darwin

package cli

// holdActivity keeps the app from being throttled while it runs; only
// macOS throttles (App Nap), so elsewhere it does nothing.
func holdActivity(reason string) (release func()) { return func() {} }
