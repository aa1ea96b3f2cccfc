package engine

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the worker in its own process group, so killing it
// takes anything it started along, and has the kernel kill it if the
// engine dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
