#define _GNU_SOURCE
#include "GoPluginSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __linux__
#include <poll.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#endif

#if defined(NSIG)
#define GOPLUGIN_SIGNAL_LIMIT NSIG
#else
#define GOPLUGIN_SIGNAL_LIMIT 65
#endif

int goplugin_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

int goplugin_pidfd_send_signal(int process_descriptor, int signal) {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  return (int)syscall(SYS_pidfd_send_signal, process_descriptor, signal, NULL, 0);
#else
  (void)process_descriptor;
  (void)signal;
  errno = ENOSYS;
  return -1;
#endif
}

/// What the child writes to the error pipe when a step fails: the step, then errno.
typedef struct child_failure {
  int32_t step;
  int32_t error;
} child_failure;

/// In the child: reports a failed step to the parent and ends. Async-signal-safe.
static void child_fail(int report, goplugin_spawn_step step) {
  child_failure failure = {(int32_t)step, (int32_t)errno};
  ssize_t written;
  do {
    written = write(report, &failure, sizeof failure);
  } while (written < 0 && errno == EINTR);
  _exit(127);
}

/// In the child: closes the descriptors from `first` to `last`, both included.
static void child_close_range(unsigned int first, unsigned int last, unsigned int limit) {
  if (first > last) return;
#if defined(__linux__) && defined(SYS_close_range)
  if (syscall(SYS_close_range, first, last, 0) == 0) return;
#endif
  // Kernels before 5.9: one by one, up to the descriptor limit the parent looked up.
  for (unsigned int descriptor = first; descriptor <= last && descriptor < limit; descriptor++) {
    close((int)descriptor);
  }
}

/// In the child: from the clone (or fork) to the exec. Every call here is async-signal-safe,
/// because the parent has other threads, whose locks (malloc's among them) the child inherits
/// held; and on Linux the child shares the parent's memory until it execs, so it writes
/// nothing the parent reads.
static void child_run(
  const goplugin_spawn_request *request,
  pid_t parent,
  int sources[3],
  int report,
  unsigned int descriptor_limit
) {
#ifndef __linux__
  (void)parent;
#endif
  // Handlers make no sense after exec, and ignored signals stay ignored through it: a host that
  // ignores SIGPIPE or SIGINT (or traps SIGTERM for its own shutdown) must not pass that on.
  struct sigaction action = {0};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  for (int signal = 1; signal < GOPLUGIN_SIGNAL_LIMIT; signal++) {
    if (signal == SIGKILL || signal == SIGSTOP) continue;
    // The C library's own real-time signals refuse a change: nothing to reset there.
    (void)sigaction(signal, &action, NULL);
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, NULL);

  if (request->new_process_group && setpgid(0, 0) != 0) child_fail(report, GOPLUGIN_SPAWN_PROCESS_GROUP);

#ifdef __linux__
  if (request->dies_with_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(report, GOPLUGIN_SPAWN_PARENT_DEATH_SIGNAL);
    // The parent may have died between the fork and the prctl, which then never fires: the
    // child has been adopted by then, and goes now.
    if (getppid() != parent) _exit(127);
  }
#endif

  // A source below 3 that is not its own target would be overwritten by another stream's dup2
  // (a host whose stdout is closed gets pipe descriptors from 0 up): move it out of the way.
  for (int target = 0; target < 3; target++) {
    if (sources[target] < 3 && sources[target] != target) {
      sources[target] = fcntl(sources[target], F_DUPFD, 3);
      if (sources[target] < 0) child_fail(report, GOPLUGIN_SPAWN_STANDARD_STREAMS);
    }
  }
  for (int target = 0; target < 3; target++) {
    if (sources[target] == target) {
      // dup2 onto itself leaves close-on-exec set: clear it instead.
      if (fcntl(target, F_SETFD, 0) != 0) child_fail(report, GOPLUGIN_SPAWN_STANDARD_STREAMS);
    } else if (dup2(sources[target], target) < 0) {
      child_fail(report, GOPLUGIN_SPAWN_STANDARD_STREAMS);
    }
  }

  if (request->working_directory != NULL && chdir(request->working_directory) != 0) {
    child_fail(report, GOPLUGIN_SPAWN_WORKING_DIRECTORY);
  }

  // Nothing of the host's but the three streams reaches the plugin. The error pipe is
  // close-on-exec already, and stays open until the exec so that a failure can be reported.
  // A launch by descriptor (checksum verification) names the host's own /proc/<pid>/fd entry,
  // which the host keeps open: the child needs no copy of it.
  child_close_range(3, (unsigned int)report - 1, descriptor_limit);
  child_close_range((unsigned int)report + 1, UINT_MAX, descriptor_limit);

  execve(request->path, request->arguments, request->environment);
  child_fail(report, GOPLUGIN_SPAWN_EXEC);
}

static void close_if_open(int descriptor) {
  if (descriptor >= 0) close(descriptor);
}

#ifdef __linux__
/// What the child needs, on the parent's stack: the child runs on a stack of its own but in the
/// parent's memory, and the parent waits (CLONE_VFORK) until the child has exec'd or exited.
typedef struct child_arguments {
  const goplugin_spawn_request *request;
  pid_t parent;
  int sources[3];
  int report_read;
  int report_write;
  unsigned int descriptor_limit;
} child_arguments;

static int child_entry(void *raw) {
  child_arguments *arguments = raw;
  close(arguments->report_read);
  child_run(
    arguments->request, arguments->parent, arguments->sources, arguments->report_write,
    arguments->descriptor_limit);
  return 127;
}

/// Starts the child as posix_spawn does, sharing the parent's memory until the exec instead
/// of copying it: a fork of a large host (a test process with a reservation bigger than the
/// machine's memory, say) is refused with ENOMEM by the kernel's overcommit accounting, and
/// copying the page tables of a big process costs time on every launch.
static pid_t start_child(child_arguments *arguments) {
  const size_t stack_size = 256 * 1024;
  void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  // Stacks grow down on every architecture Linux runs Swift on.
  pid_t pid = clone(child_entry, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, arguments);
  int clone_error = errno;
  munmap(stack, stack_size);
  errno = clone_error;
  return pid;
}
#endif

static int make_pipe(int ends[2]) {
#ifdef __linux__
  return pipe2(ends, O_CLOEXEC);
#else
  if (pipe(ends) != 0) return -1;
  fcntl(ends[0], F_SETFD, FD_CLOEXEC);
  fcntl(ends[1], F_SETFD, FD_CLOEXEC);
  return 0;
#endif
}

int goplugin_spawn(const goplugin_spawn_request *request, goplugin_spawn_result *result) {
  result->pid = 0;
  result->process_descriptor = -1;
  result->standard_output = -1;
  result->standard_error = -1;
  result->failed_step = GOPLUGIN_SPAWN_OK;
  result->error = 0;

  int output[2] = {-1, -1};
  int error[2] = {-1, -1};
  int report[2] = {-1, -1};
  if (make_pipe(output) != 0 || make_pipe(error) != 0 || make_pipe(report) != 0) {
    result->failed_step = GOPLUGIN_SPAWN_PIPE;
    result->error = errno;
    close_if_open(output[0]);
    close_if_open(output[1]);
    close_if_open(error[0]);
    close_if_open(error[1]);
    close_if_open(report[0]);
    close_if_open(report[1]);
    return -1;
  }
  // The error pipe's write end must not collide with the three standard descriptors the child
  // sets up (a host with closed standard descriptors gets pipes from 0 up).
  if (report[1] < 3) {
    int moved = fcntl(report[1], F_DUPFD_CLOEXEC, 3);
    close(report[1]);
    report[1] = moved;
  }
  struct rlimit limit = {0};
  unsigned int descriptor_limit =
    getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? (unsigned int)limit.rlim_cur : 65536;
  int sources[3] = {request->standard_input, output[1], error[1]};
  pid_t parent = getpid();

  // No handler of the host's may run in the child before the child resets them all.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
#ifdef __linux__
  child_arguments arguments = {
    request, parent, {sources[0], sources[1], sources[2]}, report[0], report[1], descriptor_limit};
  pid_t pid = report[1] < 0 ? -1 : start_child(&arguments);
  int fork_error = errno;
#else
  pid_t pid = report[1] < 0 ? -1 : fork();
  int fork_error = errno;
  if (pid == 0) {
    close(report[0]);
    child_run(request, parent, sources, report[1], descriptor_limit);
  }
#endif
  pthread_sigmask(SIG_SETMASK, &previous, NULL);

  close(output[1]);
  close(error[1]);
  close_if_open(report[1]);
  if (pid < 0) {
    result->failed_step = GOPLUGIN_SPAWN_FORK;
    result->error = fork_error;
    close(output[0]);
    close(error[0]);
    close(report[0]);
    return -1;
  }

  // The error pipe closes at the exec (close-on-exec), or carries the failed step first.
  child_failure failure = {0, 0};
  size_t received = 0;
  while (received < sizeof failure) {
    ssize_t count = read(report[0], (char *)&failure + received, sizeof failure - received);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    received += (size_t)count;
  }
  close(report[0]);
  if (received > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    close(output[0]);
    close(error[0]);
    result->failed_step = received == sizeof failure ? (goplugin_spawn_step)failure.step : GOPLUGIN_SPAWN_EXEC;
    result->error = received == sizeof failure ? failure.error : EIO;
    return -1;
  }

  result->pid = pid;
  // The child is ours and not reaped, so its pid cannot have been reused yet.
  result->process_descriptor = goplugin_pidfd_open(pid);
  result->standard_output = output[0];
  result->standard_error = error[0];
  return 0;
}

bool goplugin_is_own_directory(const char *path) {
  struct stat status;
  return lstat(path, &status) == 0 && S_ISDIR(status.st_mode) && status.st_uid == geteuid();
}

bool goplugin_is_socket(const char *path) {
  struct stat status;
  return stat(path, &status) == 0 && S_ISSOCK(status.st_mode);
}

int goplugin_is_regular_file(int descriptor) {
  struct stat status;
  if (fstat(descriptor, &status) != 0) return -1;
  return S_ISREG(status.st_mode) ? 1 : 0;
}

int goplugin_bind_loopback(int descriptor, uint16_t port) {
  struct sockaddr_in address;
  memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return bind(descriptor, (const struct sockaddr *)&address, sizeof(address));
}

int goplugin_bound_port(int descriptor) {
  struct sockaddr_in address;
  socklen_t length = sizeof(address);
  if (getsockname(descriptor, (struct sockaddr *)&address, &length) != 0 || address.sin_family != AF_INET) {
    return -1;
  }
  return ntohs(address.sin_port);
}

int goplugin_file_identity_of(const char *path, goplugin_file_identity *identity) {
  struct stat status;
  if (stat(path, &status) != 0) return -1;
  identity->device = (uint64_t)status.st_dev;
  identity->inode = (uint64_t)status.st_ino;
  identity->size = (int64_t)status.st_size;
#if defined(__APPLE__)
  identity->modified_seconds = (int64_t)status.st_mtimespec.tv_sec;
  identity->modified_nanoseconds = (int64_t)status.st_mtimespec.tv_nsec;
#else
  identity->modified_seconds = (int64_t)status.st_mtim.tv_sec;
  identity->modified_nanoseconds = (int64_t)status.st_mtim.tv_nsec;
#endif
  return 0;
}

int goplugin_inotify_open(void) {
#ifdef __linux__
  return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
#else
  errno = ENOSYS;
  return -1;
#endif
}

int goplugin_inotify_watch_directory(int inotify_descriptor, const char *path) {
#ifdef __linux__
  uint32_t mask = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |
                  IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  return inotify_add_watch(inotify_descriptor, path, mask);
#else
  (void)inotify_descriptor;
  (void)path;
  errno = ENOSYS;
  return -1;
#endif
}

int goplugin_inotify_wait(int inotify_descriptor, int wake_descriptor, int timeout_ms, int *lost_watch) {
#ifdef __linux__
  struct pollfd descriptors[2] = {
    {.fd = inotify_descriptor, .events = POLLIN, .revents = 0},
    {.fd = wake_descriptor, .events = POLLIN, .revents = 0},
  };
  int ready = poll(descriptors, 2, timeout_ms);
  if (ready < 0) return errno == EINTR ? 0 : -1;
  if (descriptors[1].revents != 0) return -2;
  if (ready == 0) return 0;
  int counted = 0;
  char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t length = read(inotify_descriptor, buffer, sizeof(buffer));
    if (length < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      return -1;
    }
    if (length == 0) break;
    for (char *cursor = buffer; cursor < buffer + length;) {
      const struct inotify_event *event = (const struct inotify_event *)cursor;
      // An overflow, or the directory itself going, counts: only a rescan can tell what happened.
      if (event->len == 0 || event->name[0] != '.') counted += 1;
      if (event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) *lost_watch = 1;
      cursor += sizeof(struct inotify_event) + event->len;
    }
  }
  return counted;
#else
  (void)inotify_descriptor;
  (void)wake_descriptor;
  (void)timeout_ms;
  (void)lost_watch;
  errno = ENOSYS;
  return -1;
#endif
}
