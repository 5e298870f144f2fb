package enginetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts an engine in its own process group (so Kill reaches what
// it forked and a terminal's Ctrl-C reaches only the test binary) and has the
// kernel send it SIGTERM when the test binary dies without calling Main.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// exited reports whether process pid, a child not yet reaped, has exited.
// It reads /proc so that it does not reap the child: cmd.Wait still can.
func exited(pid int) bool {
	state := procState("/proc/" + strconv.Itoa(pid) + "/stat")
	return state == 0 || state == 'Z' || state == 'X'
}

// stopped reports whether every thread of process pid is stopped by a
// signal (state T), as after SIGSTOP; a process that has exited is not.
func stopped(pid int) bool {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, stat := range tasks {
		if procState(stat) != 'T' {
			return false
		}
	}
	return true
}

// procState returns the state letter of a /proc stat file, 0 when it
// cannot be read.
func procState(stat string) byte {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// pidAlive reports whether some process has the given pid.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// onTmpfs reports whether dir is on a memory file system.
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	return st.Type == tmpfsMagic || st.Type == ramfsMagic
}
