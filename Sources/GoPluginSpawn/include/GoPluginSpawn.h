// Launching a plugin process: fork and exec with the few things that must happen in the child
// between the two, which no Swift process library offers on Linux (a parent-death signal, a
// process group of its own), and the pidfd calls glibc may not wrap.
#ifndef GOPLUGIN_SPAWN_H
#define GOPLUGIN_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What to launch, and how.
typedef struct goplugin_spawn_request {
  /// The program to execute.
  const char *_Nonnull path;
  /// argv, argv[0] included, terminated by NULL.
  char *_Nullable const *_Nonnull arguments;
  /// The whole environment, "NAME=value" strings terminated by NULL.
  char *_Nullable const *_Nonnull environment;
  /// The child's working directory; NULL for the parent's.
  const char *_Nullable working_directory;
  /// The descriptor that becomes the child's standard input.
  int standard_input;
  /// Non-zero: the child leads a process group of its own, so that a signal to the group
  /// reaches whatever it starts, and a terminal's Ctrl-C, sent to the host's group, does not.
  int new_process_group;
  /// Non-zero: the child gets SIGKILL when the thread that called goplugin_spawn ends (Linux's
  /// PR_SET_PDEATHSIG; ignored elsewhere).
  int dies_with_parent;
} goplugin_spawn_request;

/// The step of a launch that failed.
typedef enum goplugin_spawn_step {
  GOPLUGIN_SPAWN_OK = 0,
  GOPLUGIN_SPAWN_PIPE,
  GOPLUGIN_SPAWN_FORK,
  GOPLUGIN_SPAWN_PROCESS_GROUP,
  GOPLUGIN_SPAWN_PARENT_DEATH_SIGNAL,
  GOPLUGIN_SPAWN_STANDARD_STREAMS,
  GOPLUGIN_SPAWN_WORKING_DIRECTORY,
  GOPLUGIN_SPAWN_EXEC,
} goplugin_spawn_step;

/// What a launch gave.
typedef struct goplugin_spawn_result {
  /// The child's pid, or 0 if the launch failed (a child that failed after the fork has been
  /// reaped already).
  pid_t pid;
  /// A pidfd for the child, or -1 where the kernel has none.
  int process_descriptor;
  /// Read ends of the child's stdout and stderr pipes (close-on-exec), or -1.
  int standard_output;
  int standard_error;
  /// Where the launch failed, and errno there.
  goplugin_spawn_step failed_step;
  int error;
} goplugin_spawn_result;

/// Forks and execs the request's program. In the child, only async-signal-safe calls happen
/// between the fork and the exec. Returns 0, or -1 with `failed_step` and `error` set.
int goplugin_spawn(const goplugin_spawn_request *_Nonnull request, goplugin_spawn_result *_Nonnull result);

/// pidfd_open(2): -1 with errno ENOSYS on kernels before 5.3.
int goplugin_pidfd_open(pid_t pid);

/// pidfd_send_signal(2): -1 with errno ENOSYS on kernels before 5.1.
int goplugin_pidfd_send_signal(int process_descriptor, int signal);

/// Whether `path` is a directory (not a link to one) owned by this process's effective user:
/// lstat(2), kept in C because Swift resolves `struct stat` ambiguously under
/// MemberImportVisibility when Foundation is in the build.
bool goplugin_is_own_directory(const char *_Nonnull path);

/// Whether `path` names a socket (stat(2), following links), for the same reason.
bool goplugin_is_socket(const char *_Nonnull path);

/// 1 if `descriptor` is open on a regular file, 0 if on something else, -1 (errno set) if
/// fstat fails. In C because Swift attributes `struct stat`'s fields to whichever module
/// imported it first, which a fresh release build may make one the file does not import.
int goplugin_is_regular_file(int descriptor);

/// bind(2) of the TCP socket `descriptor` to 127.0.0.1:`port`. In C because a fresh build
/// attributes `struct sockaddr_in` to whichever module first included <netinet/in.h> (NIO's
/// CNIOLinux), and Swift then refuses its fields under MemberImportVisibility.
int goplugin_bind_loopback(int descriptor, uint16_t port);

/// The port the TCP socket `descriptor` is bound to (getsockname(2)), or -1.
int goplugin_bound_port(int descriptor);


/// What identifies one version of a file cheaply: when any field changes, its content may have.
typedef struct goplugin_file_identity {
  uint64_t device;
  uint64_t inode;
  int64_t size;
  int64_t modified_seconds;
  int64_t modified_nanoseconds;
} goplugin_file_identity;

/// stat(2) of `path`, following links, into `identity`: 0, or -1 with errno set. In C for the
/// same reason as goplugin_is_regular_file.
int goplugin_file_identity_of(const char *_Nonnull path, goplugin_file_identity *_Nonnull identity);

/// An inotify descriptor (non-blocking, close-on-exec), or -1 with errno set (ENOSYS where
/// there is no inotify).
int goplugin_inotify_open(void);

/// Watches the directory `path` for entries created, written, moved in or out, deleted or
/// changed in mode: the watch descriptor, or -1 with errno set.
int goplugin_inotify_watch_directory(int inotify_descriptor, const char *_Nonnull path);

/// Waits up to `timeout_ms` (-1: forever) for inotify events or for `wake_descriptor` to become
/// readable. Returns the number of events read and dropped (the caller rescans; what changed is
/// not needed), 0 on timeout, -2 when woken (nothing is read from the wake descriptor), -1 with
/// errno set on failure. Events about names starting with a dot are counted as 0: editors and
/// atomic replacements write them, and the rename that follows is an event of its own.
/// `lost_watch` is set to 1 when a watched directory went (deleted, moved, unmounted): its
/// watch is gone, and the caller watches the path again once it exists.
int goplugin_inotify_wait(int inotify_descriptor, int wake_descriptor, int timeout_ms, int *_Nonnull lost_watch);

#ifdef __cplusplus
}
#endif

#endif
