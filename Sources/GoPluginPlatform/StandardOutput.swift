// C's `stdout` is a mutable global the compiler cannot vouch for; this is the one file that
// touches it, so no other file needs to import the C library with @preconcurrency.
#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

/// Makes C's stdout (which Swift's `print` writes through) flush at every newline, as it does on
/// a terminal: a pipe would otherwise buffer it fully, and lines would arrive late or be lost.
public func lineBufferStandardOutput() {
  setvbuf(stdout, nil, _IOLBF, 0)
}
