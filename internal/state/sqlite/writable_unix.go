//go:build unix

package sqlite

import "golang.org/x/sys/unix"

// writable asks the kernel whether this process may write path, which
// creates nothing (a probe file would).
func writable(path string) error { return unix.Access(path, unix.W_OK) }
