package durable

import "unsafe"

// Align is the alignment direct I/O (O_DIRECT) asks of a write's memory,
// offset and length on the filesystems the hub runs on.
const Align = 4096

// AlignedBuffer returns an empty slice of capacity n whose first byte
// lies on an Align boundary, for direct writes.
func AlignedBuffer(n int) []byte {
	raw := make([]byte, n+Align)
	off := (Align - int(uintptr(unsafe.Pointer(&raw[0]))%Align)) % Align
	return raw[off : off : off+n]
}
