// The C library, under whichever name this platform gives it. Every file of the package that
// calls POSIX imports this module instead of repeating the platform switch.
#if canImport(Glibc)
@_exported public import Glibc
#elseif canImport(Musl)
@_exported public import Musl
#elseif canImport(Darwin)
@_exported public import Darwin
#endif
