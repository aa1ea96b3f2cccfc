//go:build !linux

package k8stest

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(p *os.Process, sig syscall.Signal) { _ = p.Signal(sig) }

// processAlive errs on the side of keeping another process's files.
func processAlive(int) bool { return true }

func exitCode(ps *os.ProcessState) int32 { return int32(ps.ExitCode()) }
