// Package hugepage asks Linux to back the Go heap with transparent huge
// pages.
//
// bufscope analyze touches a heap of some 100 MB at random (each RPC's
// state is reached again hundreds of milliseconds after it was last
// used), and in a virtual machine every TLB miss costs a two-level page
// walk. Linux's default THP mode, "madvise", grants huge pages only to
// memory that asks for them (madvise MADV_HUGEPAGE), and the Go runtime
// asks for none on the heap. Advise maps a stretch of heap and asks for
// it; the allocator then carves the program's objects out of that
// stretch. On this project's 2-CPU VM it cut a run's CPU time by about a
// tenth (docs/performance.md).
package hugepage

// Advise maps at least size bytes of Go heap, asks the kernel to back
// them with transparent huge pages, and frees them for the allocator to
// reuse. It does nothing where huge pages cannot be asked for (other
// systems; THP set to "never" makes the request a no-op). It touches none
// of the memory itself; what the program then uses is faulted in 2 MiB at
// a time, which adds a few MiB to a small heap's resident size. The heap
// the program grows beyond size gets ordinary pages.
//
// It allocates and runs a garbage collection: call it once, early.
func Advise(size int) error { return advise(size) }
