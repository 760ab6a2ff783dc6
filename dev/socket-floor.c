// The floor under every plugin call on this machine: two processes passing a small message
// back and forth over a unix socket, each waiting in epoll as an event loop does, with no
// protocol at all. A gRPC call between two plugin processes cannot cost less than one of these
// round trips; dev/socket-floor.sh builds and runs it.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double cpu_us(struct timeval t) { return t.tv_sec * 1e6 + t.tv_usec; }

// One side's loop: wait until the socket is readable, read what came, write the answer.
static void echo(int fd, int rounds, int size) {
  char buffer[4096];
  int poll = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN};
  epoll_ctl(poll, EPOLL_CTL_ADD, fd, &interest);
  for (int i = 0; i < rounds; i++) {
    struct epoll_event ready;
    if (epoll_wait(poll, &ready, 1, -1) != 1) exit(1);
    if (read(fd, buffer, sizeof buffer) <= 0) exit(1);
    if (write(fd, buffer, size) != size) exit(1);
  }
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 100000;
  int warmup = rounds / 10;
  int size = 100;  // about a small gRPC call's HEADERS and DATA frames
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 1;
  pid_t child = fork();
  if (child == 0) {
    close(pair[0]);
    echo(pair[1], warmup + rounds, size);
    _exit(0);
  }
  close(pair[1]);
  char buffer[4096] = {0};
  int poll = epoll_create1(0);
  struct epoll_event interest = {.events = EPOLLIN};
  epoll_ctl(poll, EPOLL_CTL_ADD, pair[0], &interest);
  double start = 0;
  struct rusage before;
  for (int i = 0; i < warmup + rounds; i++) {
    if (i == warmup) {
      getrusage(RUSAGE_SELF, &before);
      start = now_us();
    }
    struct epoll_event ready;
    if (write(pair[0], buffer, size) != size) return 1;
    if (epoll_wait(poll, &ready, 1, -1) != 1) return 1;
    if (read(pair[0], buffer, sizeof buffer) <= 0) return 1;
  }
  double elapsed = now_us() - start;
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  waitpid(child, NULL, 0);
  getrusage(RUSAGE_CHILDREN, &children);
  // The child's usage covers its warm-up too; scaled to the timed rounds it is close enough.
  double share = (double)rounds / (warmup + rounds);
  double user = cpu_us(self.ru_utime) - cpu_us(before.ru_utime) + cpu_us(children.ru_utime) * share;
  double sys = cpu_us(self.ru_stime) - cpu_us(before.ru_stime) + cpu_us(children.ru_stime) * share;
  printf("socket round trip (2 processes, epoll, %d bytes each way): %.1f µs; CPU %.1f µs user, %.1f µs sys\n",
         size, elapsed / rounds, user / rounds, sys / rounds);
  return 0;
}
