//go:build !linux

package hugepage

func advise(int) error { return nil }
