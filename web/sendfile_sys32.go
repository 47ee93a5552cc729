//go:build linux && (arm || 386 || mips || mipsle)

package web

import "syscall"

// sysSendfile is sendfile(2) with a 64-bit offset. On 32-bit architectures plain
// SYS_SENDFILE reads *off as a 32-bit off_t: past 2 GiB it fails with EINVAL, and past
// 4 GiB it sends the bytes from the wrong place (found on armv7 under qemu: a Range at
// 4 GiB got the file's first bytes). SYS_SENDFILE64 takes the loff_t sendFile passes.
const sysSendfile = syscall.SYS_SENDFILE64
