package control

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestListenMode0600WhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := shortTempDir(t)
	path := filepath.Join(dir, "sub", "c.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", di.Mode().Perm())
	}
	l.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket not removed on Close: %v", err)
	}
}

func TestListenRefusesLongPath(t *testing.T) {
	path := "/tmp/" + strings.Repeat("d", 60) + "/" + strings.Repeat("s", 40) + ".sock"
	_, err := Listen(path)
	if !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("Listen(%d-byte path) = %v, want ErrPathTooLong", len(path), err)
	}
	for _, frag := range []string{path, "104", "shorter path"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Error("Listen created the directory of a path it refused")
	}
}

func TestListenAcceptsLimitLength(t *testing.T) {
	dir := shortTempDir(t)
	name := strings.Repeat("s", MaxSocketPathLen-len(dir)-1)
	l, err := Listen(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(dir)+1+len(name), err)
	}
	l.Close()
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := makeStaleSocket(t, shortTempDir(t)+"/c.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the new socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesLiveServer(t *testing.T) {
	path, _ := serve(t, twoVMs(t))
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "another instance is serving at "+path) {
		t.Fatalf("Listen over a live server = %v", err)
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("Listen over a live server = %v, which does not wrap ErrInUse", err)
	}
	// The live server still works.
	if _, err := NewClient(path).Overview(ctxT(t)); err != nil {
		t.Errorf("the first server broke: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := shortTempDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(file)
	if err == nil || !strings.Contains(err.Error(), "is not a socket (a regular file)") {
		t.Fatalf("Listen over a regular file = %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("Listen damaged the regular file")
	}
	_, err = Listen(dir)
	if err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Fatalf("Listen over a directory = %v", err)
	}
	if _, err := Listen(""); err == nil {
		t.Fatal("Listen(\"\") succeeded")
	}
}
