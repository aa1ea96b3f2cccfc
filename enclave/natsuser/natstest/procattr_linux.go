package natstest

import (
	"os/exec"
	"syscall"
)

// procAttr has the kernel kill the server if the test process dies
// without running its cleanups, so no server outlives its test.
func procAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
