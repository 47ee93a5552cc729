//go:build linux && !(arm || 386 || mips || mipsle)

package web

import "syscall"

// sysSendfile is sendfile(2) with a 64-bit offset: on 64-bit architectures that is
// SYS_SENDFILE itself (see sendfile_sys32.go for the others).
const sysSendfile = syscall.SYS_SENDFILE
