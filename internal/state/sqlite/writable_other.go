//go:build !unix

package sqlite

// writable cannot be answered here without creating a file; Open reports
// an unwritable directory when it comes to it.
func writable(string) error { return nil }
