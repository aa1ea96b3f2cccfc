//go:build !linux

package natstest

import "os/exec"

// procAttr does nothing where the kernel cannot tie the server's life to
// the test process; the test's cleanup stops it.
func procAttr(*exec.Cmd) {}
